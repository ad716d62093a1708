package lifecycle

// Executor is what Drive needs from a producer or consumer for one key: a
// durable store for the entry, a way to carry out effects, and the time.
type Executor struct {
	// Persist makes e the key's entry: durable before it returns, or, when
	// lazy (Step.Lazy), at the latest with the next durable write of any
	// key (a write-ahead log keeps writes in order).
	Persist func(e Entry, lazy bool) error
	// Execute carries out effects in order and returns the input their
	// outcome makes (nil if they make none). An error stops the drive with
	// the entry as last persisted: an intent stays outstanding for Recover.
	Execute func(effects []Effect) (Input, error)
	// Now is the time, unix ms.
	Now func() int64
}

// Drive feeds in to m and carries out every step with x until the input is
// handled (Next is Done or Again): each step's entry is persisted before its
// effects run, and the effects' outcome is the next input. It returns the
// last step, whose Entry is the key's entry now, with the Decision of the
// record received, if any.
func Drive(m Machine, k Key, e Entry, in Input, x Executor) (Step, error) {
	var decision Step
	for {
		st := m.Step(k, e, in, x.Now())
		if st.Decision.Merged != nil {
			decision = st
		}
		if st.Persist {
			if err := x.Persist(st.Entry, st.Lazy); err != nil {
				return st, err
			}
		}
		e = st.Entry
		next, err := x.Execute(st.Effects)
		if st.Decision.Merged == nil {
			st.Decision = decision.Decision
		}
		if err != nil || st.Next != Feed {
			return st, err
		}
		if next == nil {
			st.Next, st.Err = Done, ErrUnexpected
			return st, nil
		}
		in = next
	}
}
