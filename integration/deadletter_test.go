package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/consumer"
	"github.com/s3mesh/s3mesh/internal/testenv"
)

// waitDeadLetter waits until site's DLQ holds an entry that match selects,
// and fails the test unless its reason is reason and its error names
// every one of words.
func (e *env) waitDeadLetter(t *testing.T, site, what string, match func(consumer.DeadLetter) bool, reason string, words ...string) {
	t.Helper()
	testenv.Eventually(t, converge, fmt.Sprintf("dead letter of %s at %s", what, site), func() error {
		var found *consumer.DeadLetter
		err := broker.ReadStream(ctxT(t), e.sites[site].js, broker.DLQStream(site), time.Time{}, func(_ uint64, data []byte) error {
			var d consumer.DeadLetter
			if json.Unmarshal(data, &d) == nil && match(d) {
				found = &d
			}
			return nil
		})
		switch {
		case err != nil:
			return err
		case found == nil:
			return fmt.Errorf("none yet")
		}
		ok := found.Reason == reason
		for _, w := range words {
			ok = ok && strings.Contains(found.Error, w)
		}
		if !ok {
			t.Fatalf("dead letter of %s at %s: reason %s, %q; want %s naming %q", what, site, found.Reason, found.Error, reason, words)
		}
		return nil
	})
}
