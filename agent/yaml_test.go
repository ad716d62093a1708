package agent

import (
	"gopkg.in/yaml.v3"

	"github.com/s3mesh/s3mesh/config"
)

func yamlOf(c *config.Site) ([]byte, error) { return yaml.Marshal(c) }
func ptr[T any](v T) *T                     { return &v }
