package lab

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group (so the lab can kill
// the whole group) and has the kernel SIGKILL it if the lab process dies.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
