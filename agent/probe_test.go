package agent

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/s3mesh/s3mesh/config"
	"github.com/s3mesh/s3mesh/s3io"
)

// TestJudgeStore: a store without conditional writes is refused with an
// error naming the setting, unless the configuration accepts the weaker
// mode; a store with them is fine either way.
func TestJudgeStore(t *testing.T) {
	good := s3io.Capabilities{ConditionalPut: true, ConditionalDelete: true}
	for _, tc := range []struct {
		caps     s3io.Capabilities
		weak     bool
		refused  bool
		scenario string
	}{
		{good, false, false, "conditional store"},
		{good, true, false, "conditional store, weak mode set"},
		{s3io.Capabilities{ConditionalDelete: true}, false, true, "no conditional PUT"},
		{s3io.Capabilities{ConditionalPut: true}, false, true, "no conditional DELETE"},
		{s3io.Capabilities{}, true, false, "none, weak mode accepted"},
	} {
		a := &Agent{cfg: &config.Site{S3: config.S3{Endpoint: "http://s", UnconditionalWrites: tc.weak}}, log: slog.New(slog.DiscardHandler)}
		err := a.judge(tc.caps)
		if (err != nil) != tc.refused {
			t.Errorf("%s: err %v, want refused %v", tc.scenario, err, tc.refused)
		}
		if err != nil && !strings.Contains(err.Error(), "s3.unconditional_writes") {
			t.Errorf("%s: the error does not name the setting: %v", tc.scenario, err)
		}
	}
}
