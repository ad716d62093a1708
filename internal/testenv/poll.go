package testenv

import (
	"encoding/json"
	"testing"
	"time"
)

// Eventually polls cond every 50 ms until it returns nil, and fails the
// test with what and cond's last error once d has passed.
func Eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// JSRefusal reports whether data is a JetStream API error answer (such as
// "JetStream not enabled for account"): a request a server refused.
func JSRefusal(data []byte) bool {
	var r struct {
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	return json.Unmarshal(data, &r) == nil && r.Error != nil && r.Error.Code >= 400
}
