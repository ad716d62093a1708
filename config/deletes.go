package config

import "time"

// Deletes configures the receiver's guard against a peer's mass deletes:
// per bucket and per peer, once the peer's deletes applied here within
// Window would exceed MaxFraction of the bucket's keys at this site (and
// Min), its further deletes in that bucket are held until an operator
// releases or discards them (`s3mesh deletes`).
type Deletes struct {
	// MaxFraction is the share of the bucket's keys one peer may delete
	// within Window (default: scan.max_delete_fraction).
	MaxFraction float64 `yaml:"max_fraction"`
	// Window is how far back the deletes are counted (default 5m).
	Window time.Duration `yaml:"window"`
	// Min is the fewest deletes within Window that can start a hold, so a
	// small bucket is not held for a few deletes (default 100).
	Min int `yaml:"min"`
}

// Defaults of the deletes section.
const (
	DefaultDeletesWindow = 5 * time.Minute
	DefaultDeletesMin    = 100
)

func (d *Deletes) defaults(scanFraction float64) {
	if d.MaxFraction == 0 {
		d.MaxFraction = scanFraction
	}
	if d.Window == 0 {
		d.Window = DefaultDeletesWindow
	}
	if d.Min == 0 {
		d.Min = DefaultDeletesMin
	}
}

func (d Deletes) validate() error {
	if d.MaxFraction <= 0 || d.MaxFraction > 1 {
		return fieldErr("deletes.max_fraction", "%v: want (0, 1]", d.MaxFraction)
	}
	if d.Window < time.Second || d.Window > 24*time.Hour {
		return fieldErr("deletes.window", "%v: want 1s..24h", d.Window)
	}
	if d.Min < 1 {
		return fieldErr("deletes.min", "%d: want at least 1", d.Min)
	}
	return nil
}
