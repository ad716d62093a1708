package integration

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/s3mesh/s3mesh/agent"
	"github.com/s3mesh/s3mesh/broker"
	"github.com/s3mesh/s3mesh/config"
)

// A rotation of a's signing key in a real lab, as docs/security.md describes it:
// b and c accept a's new key beside the old one (records signed by either
// apply), a switches to the new seed, b and c drop the old key; a record
// signed by the old key then lands in their DLQ as bad-signature, the
// write behind it applies, and `s3mesh replay` over it refuses it too.
func TestSigningKeyRotation(t *testing.T) {
	t.Parallel() // a lab of its own: see parallelTests
	e := newEnv(t, nil)
	ctx := ctxT(t)
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	const n = uint64(1) << 40

	configOf := map[string]string{}
	var oldPub string
	for _, s := range e.info.Sites {
		configOf[s.Name] = s.Config
		if s.Name == "a" {
			oldPub = s.PublicKey
		}
	}
	oldKey := e.signingKey(t, "a")
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	newPub, _ := kp.PublicKey()
	newSeed := filepath.Join(e.info.Dir, "a", "signing-new.nk")
	if err := os.WriteFile(newSeed, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	newKey, err := config.ParseSeed(string(seed))
	if err != nil {
		t.Fatal(err)
	}

	// edit rewrites site's site.yaml line by line and restarts its agent.
	edit := func(site string, f func(line string) []string) {
		t.Helper()
		b, err := os.ReadFile(configOf[site])
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			out = append(out, f(l)...)
		}
		y := strings.Join(out, "\n")
		if y == string(b) {
			t.Fatalf("%s: the edit changed nothing", configOf[site])
		}
		if err := os.WriteFile(configOf[site], []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(configOf[site]); err != nil {
			t.Fatalf("edited %s: %v", configOf[site], err)
		}
		for _, verb := range []string{"kill", "start"} {
			if out, err := e.lab.Ctl(verb, site); err != nil {
				t.Fatalf("lab ctl %s %s: %v %s", verb, site, err, out)
			}
		}
	}
	publish := func(name string, key ed25519.PrivateKey) (string, []byte) {
		t.Helper()
		k := "rotation/" + name + "-" + tag
		body := []byte("signed by hand: " + name)
		rec := dlqcliRecord("a", bucket, k, n, body)
		data, err := rec.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.sites["a"].js.Publish(ctx, broker.ChangesSubject("a", 0), data); err != nil {
			t.Fatal(err)
		}
		return k, body
	}

	// 1. b and c accept both keys of a.
	for _, s := range []string{"b", "c"} {
		edit(s, func(l string) []string {
			if strings.Contains(l, oldPub) {
				return []string{l, strings.Replace(l, oldPub, newPub, 1)}
			}
			return []string{l}
		})
	}
	w := object{body: []byte("a still signs with the old key " + tag)}
	e.put(t, "a", "rotation/old-"+tag, w)
	e.waitObject(t, "rotation/old-"+tag, w, converge)
	k, body := publish("new-during-overlap", newKey)
	for _, s := range []string{"b", "c"} {
		e.replayWaitAt(t, s, k, body)
	}

	// 2. a signs with the new seed.
	edit("a", func(l string) []string {
		return []string{strings.Replace(l, filepath.Join(e.info.Dir, "a", "signing.nk"), newSeed, 1)}
	})
	w = object{body: []byte("a signs with the new key " + tag)}
	e.put(t, "a", "rotation/new-"+tag, w)
	e.waitObject(t, "rotation/new-"+tag, w, converge)

	// 3. b and c drop the old key.
	for _, s := range []string{"b", "c"} {
		edit(s, func(l string) []string {
			if strings.Contains(l, oldPub) {
				return nil
			}
			return []string{l}
		})
	}
	lateSeq := e.changesSeq(t, "a") + 1
	late, _ := publish("old-after-removal", oldKey)
	w = object{body: []byte("behind the old-key record " + tag)}
	e.put(t, "a", "rotation/after-"+tag, w)
	e.waitObject(t, "rotation/after-"+tag, w, converge)
	for _, s := range []string{"b", "c"} {
		e.dlqcliWait(t, s, converge, "the old key's record as bad-signature", func(es []dlqcliEntry) bool {
			for _, d := range es {
				if d.Stream == "CHANGES_a" && d.Seq == lateSeq && d.Reason == "bad-signature" && d.Peer == "a" {
					return true
				}
			}
			return false
		})
		if info, err := e.sites[s].s3.Head(ctx, bucket, late); err != nil || info.Exists {
			t.Errorf("%s: the old key's record was applied (exists %v, err %v)", s, info.Exists, err)
		}
	}

	// 4. replay verifies as the consumer does.
	out, errOut, code := dlqcliRun(t, "replay", "--lab", e.dlqcliLabJSON(), "--site", "b", "--peer", "a",
		"--from-seq", strconv.FormatUint(lateSeq, 10), "--json")
	if code != 0 {
		t.Fatalf("s3mesh replay: exit %d: %s", code, errOut)
	}
	var r agent.ReplayResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("s3mesh replay: %v in %q", err, out)
	}
	if r.Counts.Reasons["bad-signature"] != 1 || r.Counts.Applied != 0 {
		t.Errorf("replay from CHANGES_a:%d at b: %+v; want the old key's record dead-lettered as bad-signature, nothing applied", lateSeq, r.Counts)
	}
	if info, err := e.sites["b"].s3.Head(ctx, bucket, late); err != nil || info.Exists {
		t.Errorf("b: the replay applied the old key's record (exists %v, err %v)", info.Exists, err)
	}
}
