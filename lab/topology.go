package lab

import (
	"fmt"
	"slices"

	"github.com/s3mesh/s3mesh/config"
)

// yTopology is a bucket's mode and prefix filters in a site's
// configuration.
type yTopology struct {
	Mode    string   `yaml:"mode,omitempty"`
	Include []string `yaml:"include,omitempty"`
	Exclude []string `yaml:"exclude,omitempty"`
}

// topology is bucket's mode and filters at site.
func (o Options) topology(site, bucket string) yTopology {
	t := yTopology{Include: o.Filters[bucket].Include, Exclude: o.Filters[bucket].Exclude}
	switch {
	case slices.Contains(o.Archive, site):
		t.Mode = config.ModeArchive
	case slices.Contains(o.Replica, site):
		t.Mode = config.ModeReplica
	}
	return t
}

// checkModes refuses an archive or replica site the lab does not have, or
// a site named as both.
func (o Options) checkModes() error {
	for _, l := range []struct {
		flag  string
		sites []string
	}{{"--archive", o.Archive}, {"--replica", o.Replica}} {
		for _, s := range l.sites {
			if len(s) != 1 || s[0] < 'a' || int(s[0]-'a') >= o.Sites {
				return fmt.Errorf("lab: %s %q: not a site of this lab (a..%c)", l.flag, s, 'a'+o.Sites-1)
			}
			if l.flag == "--archive" && slices.Contains(o.Replica, s) {
				return fmt.Errorf("lab: site %s is named by --archive and --replica", s)
			}
		}
	}
	return nil
}
