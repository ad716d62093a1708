package containers

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

var (
	seedsOnce sync.Once
	seeds     map[string]string
	seedsErr  error
)

// signingEnv is the environment variable and value of site's record
// signing seed: the lab-only default of docker-compose.yml
// (${S3MESH_SIGNING_KEY_<SITE>:-SU…}), whose public key docker/site-*.yaml
// list for their peers.
func (l *lab) signingEnv(site string) (string, string) {
	seedsOnce.Do(func() {
		b, err := os.ReadFile(filepath.Join(l.root, "docker-compose.yml"))
		if err != nil {
			seedsErr = err
			return
		}
		seeds = map[string]string{}
		for _, m := range regexp.MustCompile(`S3MESH_SIGNING_KEY_([A-Z]):-(SU[A-Z0-9]+)\}`).FindAllSubmatch(b, -1) {
			seeds[string(m[1])] = string(m[2])
		}
	})
	name := "SIGNING_KEY_" + strings.ToUpper(site)
	v, ok := seeds[strings.ToUpper(site)]
	if !ok {
		panic(fmt.Sprintf("docker-compose.yml has no default for S3MESH_%s (%v)", name, seedsErr))
	}
	return name, v
}
