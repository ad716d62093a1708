package producer

import (
	"fmt"
	"sync"
	"time"
)

// progress is the reporter of one running scan. The scan hands it copies of
// its counters (report), so the reporting goroutine never reads counters the
// scan is writing.
type progress struct {
	done chan struct{}
	mu   sync.Mutex
	snap ScanStats
}

// report records the scan's counters as they are now.
func (p *progress) report(st *ScanStats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.snap = *st
}

func (p *progress) now() ScanStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap
}

// progress reports a running scan: a line redrawn on a terminal, or a log
// line every 10 s otherwise (so a long initial sync is never silent).
func (s *Scanner) progress(bucket string, st *ScanStats) *progress {
	p := &progress{done: make(chan struct{}), snap: *st}
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
				st := p.now()
				if s.Progress != nil {
					fmt.Fprintf(s.Progress, "\rscan %s: %d listed, %d published in %s\n", bucket, st.Listed, st.Published, time.Since(start).Round(time.Second))
				}
				return
			case <-t.C:
				st := p.now()
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

// stop reports the final counters and ends the reporter.
func (p *progress) stop(st *ScanStats) {
	p.report(st)
	close(p.done)
}
