package producer

import (
	"fmt"
	"time"
)

type progress struct{ done chan struct{} }

// progress reports a running scan: a line redrawn on a terminal, or a log
// line every 10 s otherwise (so a long initial sync is never silent).
func (s *Scanner) progress(bucket string, st *ScanStats) *progress {
	p := &progress{done: make(chan struct{})}
	start := time.Now()
	every := 10 * time.Second
	if s.Progress != nil {
		every = 500 * time.Millisecond
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				if s.Progress != nil {
					fmt.Fprintf(s.Progress, "\rscan %s: %d listed, %d published in %s\n", bucket, st.Listed, st.Published, time.Since(start).Round(time.Second))
				}
				return
			case <-t.C:
				s.setStatus(bucket, func(b *BucketStatus) { b.Listed = st.Listed })
				rate := float64(st.Listed) / time.Since(start).Seconds()
				if s.Progress != nil {
					fmt.Fprintf(s.Progress, "\rscan %s: %d listed, %d published, %.0f keys/s ", bucket, st.Listed, st.Published, rate)
				} else {
					s.Log.Info("scan progress", "bucket", bucket, "listed", st.Listed, "published", st.Published, "keys_per_s", int(rate))
				}
			}
		}
	}()
	return p
}

func (p *progress) stop() { close(p.done) }
