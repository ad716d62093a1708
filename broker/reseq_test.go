package broker

import (
	"context"
	"testing"
	"time"
)

// TestRecreatedChangesStreamContinuesSequence measures what a peer's mirror
// does when a site's CHANGES stream is created again empty (its JetStream
// store lost), and that ContinueChanges repairs it.
func TestRecreatedChangesStreamContinuesSequence(t *testing.T) {
	for _, fix := range []bool{false, true} {
		name := "recreated-from-1"
		if fix {
			name = "continued"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			m := newMesh(t, "a", "b")
			m.ensureAll(ctx)
			m.publish(ctx, "b", 1, 5)
			m.waitSeq(ctx, "a", ChangesStream("b"), 5, 20*time.Second)

			// b loses its JetStream store.
			m.stop("b")
			m.sites["b"].cfg.StoreDir = t.TempDir()
			m.start("b")
			m.waitLinks("b")
			if err := EnsureStreams(ctx, m.sites["b"].js, m.sites["b"].topo); err != nil {
				t.Fatal(err)
			}
			if fix {
				next, moved, err := ContinueChanges(ctx, m.sites["b"].js, "b", 5)
				if err != nil || next != 6 || !moved {
					t.Fatalf("ContinueChanges: next %d moved %v err %v", next, moved, err)
				}
				// Again: nothing to do.
				if next, moved, err := ContinueChanges(ctx, m.sites["b"].js, "b", 5); err != nil || next != 6 || moved {
					t.Fatalf("ContinueChanges again: next %d moved %v err %v", next, moved, err)
				}
			}
			m.publish(ctx, "b", 100, 8) // records b-100 .. b-107
			want := uint64(8)
			if fix {
				want = 13
			}
			if got, _ := lastSeq(ctx, m.sites["b"].js, ChangesStream("b")); got != want {
				t.Fatalf("CHANGES_b at b: last seq %d, want %d", got, want)
			}
			m.waitSeq(ctx, "a", ChangesStream("b"), want, 30*time.Second)
			s, err := m.sites["a"].js.Stream(ctx, ChangesStream("b"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for seq := uint64(6); seq <= want; seq++ {
				msg, err := s.GetMsg(ctx, seq)
				if err != nil {
					t.Fatalf("mirror at a, seq %d: %v", seq, err)
				}
				got = append(got, msg.Header.Get("Nats-Msg-Id"))
			}
			if fix {
				if len(got) != 8 || got[0] != "b-100" || got[7] != "b-107" {
					t.Fatalf("mirror at a holds %v after seq 5, want b-100..b-107", got)
				}
				return
			}
			// Without the repair the mirror kept seqs 1-5 of the old stream
			// and dropped the first five new records (seqs 1-5 again).
			if len(got) != 3 || got[0] != "b-105" {
				t.Fatalf("mirror at a holds %v after seq 5; expected the first 5 new records dropped", got)
			}
			t.Logf("measured: a CHANGES_b created again from seq 1 loses its first %d records at the peers' mirrors", 5)
		})
	}
}
