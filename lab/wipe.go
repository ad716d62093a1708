package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// wipeBrokerFlag is the optional argument of the wipe verb.
const wipeBrokerFlag = "--broker"

// parseWipeArgs reads `wipe X [--broker]` (the flag may come first).
func parseWipeArgs(args []string) (site string, withBroker bool, err error) {
	for _, a := range args {
		switch {
		case a == wipeBrokerFlag:
			if withBroker {
				return "", false, fmt.Errorf("wipe: %s given twice", wipeBrokerFlag)
			}
			withBroker = true
		case strings.HasPrefix(a, "-"):
			return "", false, fmt.Errorf("wipe: unknown option %q (wipe X [%s])", a, wipeBrokerFlag)
		case site != "":
			return "", false, fmt.Errorf("wipe takes one site, got %q and %q (wipe X [%s])", site, a, wipeBrokerFlag)
		default:
			site = a
		}
	}
	if site == "" {
		return "", false, fmt.Errorf("wipe takes a site (wipe X [%s])", wipeBrokerFlag)
	}
	return site, withBroker, nil
}

// wipeSite simulates the loss of s's disk: it SIGKILLs s's agent, empties
// s's store (every bucket and object) and its per-key state directory and,
// withBroker, its JetStream store, then starts what was running again, empty:
// the broker (on the same ports; its leaf links reconnect) and versitygw.
// The agent stays stopped until `start X`. The caller holds l.mu.
//
// The store is emptied on disk while versitygw is stopped, not through the
// S3 API: deletions through the gateway would send one ObjectRemoved event
// per object to the site's broker, which the agent would, once started, take
// for user deletes and replicate to every peer. A lost disk deletes nothing
// anywhere else. versitygw's posix backend keeps a bucket as a directory
// (objects as files, metadata in xattrs, uploads in progress inside the
// bucket), so removing everything under its root while it is stopped leaves
// exactly a fresh, empty gateway.
func (l *Lab) wipeSite(s *site, withBroker bool) (string, error) {
	var done []string
	if s.agent.kill() {
		done = append(done, "agent killed")
	} else {
		done = append(done, "agent was not running")
	}
	l.writeInfo() // agent_pid 0
	s3Wanted := s.s3Wanted
	s.s3.stop(stopGrace) // nothing writes to the store while it is emptied
	type target struct{ what, dir string }
	targets := []target{{"store", s.dataDir()}, {"state", s.stateDir()}}
	if withBroker {
		s.broker.kill()
		targets = append(targets, target{"JetStream store", s.natsDir()})
	}
	var buckets []string
	for _, t := range targets {
		names, err := emptyDir(t.dir)
		if err != nil {
			return fmt.Sprintf("site %s: %s", s.name, strings.Join(done, "; ")), fmt.Errorf("site %s: wipe: emptying its %s %s: %w", s.name, t.what, t.dir, err)
		}
		if t.dir == s.dataDir() {
			buckets = names
		}
	}
	if len(buckets) == 0 {
		done = append(done, "store emptied (it held no bucket)")
	} else {
		done = append(done, fmt.Sprintf("store emptied (buckets %s deleted)", strings.Join(buckets, ", ")))
	}
	done = append(done, "state directory emptied")
	msg := func() string { return fmt.Sprintf("site %s wiped: %s", s.name, strings.Join(done, "; ")) }

	if withBroker {
		if err := l.startBroker(l.ctx, s); err != nil {
			return msg(), fmt.Errorf("site %s: wiped, but its broker did not start again: %w", s.name, err)
		}
		done = append(done, fmt.Sprintf("JetStream store deleted, broker started empty (pid %d)", s.broker.pid()))
	}
	switch {
	case !s3Wanted:
		done = append(done, s.store+" left stopped (start-s3 starts it)")
	case !s.broker.running():
		done = append(done, fmt.Sprintf("%s left stopped: the broker is down (start-broker %s starts both)", s.store, s.name))
	default:
		if err := l.startS3(l.ctx, s); err != nil {
			return msg(), fmt.Errorf("site %s: wiped, but %s did not start again: %w", s.name, s.store, err)
		}
		if err := checkNoBuckets(l.ctx, s); err != nil {
			return msg(), fmt.Errorf("site %s: wiped, but %w", s.name, err)
		}
		done = append(done, fmt.Sprintf("%s serving the empty store (pid %d)", s.store, s.s3.pid()))
	}
	done = append(done, fmt.Sprintf("the agent stays stopped until `start %s`", s.name))
	return msg(), nil
}

// emptyDir removes everything in dir (creating dir if it is missing) and
// returns the names of the directories it removed, sorted.
func emptyDir(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return dirs, err
		}
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs, nil
}

// checkNoBuckets asks s's store for its buckets and fails unless there
// are none.
func checkNoBuckets(ctx context.Context, s *site) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := newS3Client(s.s3Endpoint(), s.accessKey, s.secretKey).ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		return fmt.Errorf("listing its buckets failed: %w", err)
	}
	if len(out.Buckets) > 0 {
		var names []string
		for _, b := range out.Buckets {
			names = append(names, aws.ToString(b.Name))
		}
		return fmt.Errorf("versitygw still lists buckets %s", strings.Join(names, ", "))
	}
	return nil
}
