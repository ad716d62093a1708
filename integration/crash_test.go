package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Killing a site's agent (SIGKILL) while records stream in, and starting it
// again on the same state, still converges: every object arrives, and no
// record is published twice or by the wrong site.
func TestKillAgentMidStreamConverges(t *testing.T) {
	e := labEnv(t)
	before := e.seqs(t)
	const n = 120
	body := func(i int) []byte { return []byte(fmt.Sprintf("object %d written at a", i)) }
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			e.put(t, "a", fmt.Sprintf("crash/%03d", i), object{body: body(i)})
		}
	}()
	// Kill b's agent once some records have reached it.
	deadline := time.Now().Add(converge)
	for {
		info, err := e.sites["b"].s3.Head(ctxT(t), bucket, "crash/010")
		if err == nil && info.Exists {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never received crash/010")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if out, err := e.lab.Ctl("kill", "b"); err != nil {
		t.Fatalf("kill b: %v %s", err, out)
	}
	// Writes at b while its agent is down are captured by its broker.
	e.put(t, "b", "crash/local-at-b-while-down", object{body: []byte("b was down")})
	wg.Wait()
	if out, err := e.lab.Ctl("start", "b"); err != nil {
		t.Fatalf("start b: %v %s", err, out)
	}
	for i := 0; i < n; i++ {
		e.waitObject(t, fmt.Sprintf("crash/%03d", i), object{body: body(i)}, 2*converge)
	}
	e.waitObject(t, "crash/local-at-b-while-down", object{body: []byte("b was down")}, 2*converge)
	e.quiesce(t, 2*converge)
	e.checkRecords(t, before, map[string]int{"a": n, "b": 1})
}
