package testenv

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group (so Stop can kill the
// whole group) and asks the kernel to SIGKILL it if the test binary dies.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
