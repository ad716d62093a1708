// Package docs holds no code, only tests of the user documentation:
// README.md and docs/*.md link only to files and headings that exist, and
// docs/configuration.md documents exactly the configuration keys
// config.Site accepts.
package docs
