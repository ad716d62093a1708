//go:build !linux

package testenv

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group so Stop can kill the
// whole group. Parent-death signals exist only on Linux.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
