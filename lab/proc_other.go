//go:build !linux

package lab

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group so the lab can kill
// the whole group. Parent-death signals exist only on Linux: elsewhere a
// lab killed with SIGKILL leaves its children running.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
