package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// sitePorts are the loopback TCP ports of one site. They are chosen once
// per lab directory and kept in ports.json, so a resumed lab has the same
// endpoints (and the site.yaml files and peers' leaf remotes stay valid).
type sitePorts struct {
	S3   int `json:"s3"`   // versitygw
	NATS int `json:"nats"` // broker client port
	Leaf int `json:"leaf"` // broker leaf-node listener (peers reach it through proxies)
	HTTP int `json:"http"` // agent http_addr (metrics, health, webhook)
	// Store are the internal ports of a store that runs more services
	// than its S3 endpoint (SeaweedFS: master, volume and filer, HTTP and
	// gRPC each, and the S3 gateway's gRPC), storePorts of them.
	Store []int `json:"store,omitempty"`
}

func (p sitePorts) all() []int { return append([]int{p.S3, p.NATS, p.Leaf, p.HTTP}, p.Store...) }

// portsFile is the content of <dir>/ports.json.
type portsFile struct {
	Sites map[string]sitePorts `json:"sites"`
	// Links maps "x-y" (x < y) to the port of the lab's proxy that carries
	// x's leaf remote to y's leaf listener.
	Links map[string]int `json:"links"`
}

func linkName(x, y string) string { return x + "-" + y }

// siteNames returns the names of n sites: a, b, c, ...
func siteNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = string(rune('a' + i))
	}
	return out
}

// loadPorts reads path (a missing file is an empty one), gives every site
// in names and every pair of them ports that are not yet assigned, and
// saves the file if anything was added. Ports already in the file are
// kept, including those of sites not in names. storeN(name) is how many
// internal store ports the site needs (sitePorts.Store).
func loadPorts(path string, names []string, storeN func(string) int) (*portsFile, error) {
	pf := &portsFile{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("lab: %w", err)
	default:
		if err := json.Unmarshal(b, pf); err != nil {
			return nil, fmt.Errorf("lab: %s: %w", path, err)
		}
	}
	if pf.Sites == nil {
		pf.Sites = map[string]sitePorts{}
	}
	if pf.Links == nil {
		pf.Links = map[string]int{}
	}
	used := map[int]bool{}
	for _, sp := range pf.Sites {
		for _, p := range sp.all() {
			used[p] = true
		}
	}
	for _, p := range pf.Links {
		used[p] = true
	}
	need := 0
	for _, n := range names {
		sp, ok := pf.Sites[n]
		if !ok {
			need += 4
		}
		need += max(0, storeN(n)-len(sp.Store))
	}
	for i, x := range names {
		for _, y := range names[i+1:] {
			if _, ok := pf.Links[linkName(x, y)]; !ok {
				need++
			}
		}
	}
	if need == 0 {
		return pf, nil
	}
	free, err := freePorts(need, used)
	if err != nil {
		return nil, err
	}
	take := func() int { p := free[0]; free = free[1:]; return p }
	for _, n := range names {
		sp, ok := pf.Sites[n]
		if !ok {
			sp = sitePorts{S3: take(), NATS: take(), Leaf: take(), HTTP: take()}
		}
		for len(sp.Store) < storeN(n) {
			sp.Store = append(sp.Store, take())
		}
		pf.Sites[n] = sp
	}
	for i, x := range names {
		for _, y := range names[i+1:] {
			if _, ok := pf.Links[linkName(x, y)]; !ok {
				pf.Links[linkName(x, y)] = take()
			}
		}
	}
	if err := writeJSON(path, pf, 0o644); err != nil {
		return nil, err
	}
	return pf, nil
}

// freePorts returns n distinct loopback ports that were free a moment ago
// and are not in avoid. It prefers ports outside the kernel's ephemeral
// range: outgoing connections take their local ports from that range, so a
// port from it may be taken by any client by the time the lab (or a resumed
// lab, much later) binds it. All listeners are held until every port is
// found, so the ports differ from each other.
func freePorts(n int, avoid map[int]bool) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	lo, hi := stablePortRange()
	var out []int
	for tries := 0; len(out) < n; tries++ {
		addr := "127.0.0.1:0" // fallback: any free port
		if tries < 50*n {
			addr = "127.0.0.1:" + strconv.Itoa(lo+rand.IntN(hi-lo))
		} else if tries > 60*n+100 {
			return nil, errors.New("lab: cannot find enough free loopback ports")
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		lns = append(lns, l)
		p := l.Addr().(*net.TCPAddr).Port
		if !avoid[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

// stablePortRange returns [lo, hi): ports below the ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default) and
// above most well-known services.
func stablePortRange() (lo, hi int) {
	lo, hi = 15000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var elo, ehi int
		if _, err := fmt.Sscan(string(b), &elo, &ehi); err == nil {
			switch {
			case elo-lo >= 2000:
				hi = elo
			case 65535-ehi >= 2000:
				lo, hi = ehi+1, 65536
			}
		}
	}
	return lo, hi
}

// checkPortsFree reports the first of ports that cannot be bound on
// loopback now, naming what it is for, so a resumed lab fails with a clear
// message instead of a child dying on "address in use".
func checkPortsFree(ports map[string]int) error {
	for _, what := range slices.Sorted(maps.Keys(ports)) {
		p := ports[what]
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return fmt.Errorf("lab: port %d (%s) is in use by another process; stop it, or start with --fresh to pick new ports", p, what)
		}
		l.Close()
	}
	return nil
}

// writeJSON writes v as indented JSON to path atomically (temp file and
// rename), with the given mode.
func writeJSON(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), mode)
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lab: write %s: %w", path, err)
	}
	return nil
}
