// Package lab runs a local multi-site s3mesh lab on loopback: `s3mesh lab`.
//
// Each site gets, as separate processes in their own process groups (so a
// site can be killed alone and nothing outlives the lab):
//
//   - a broker, `s3mesh broker --config <dir>/<site>/site.yaml` (the NATS
//     server with JetStream, domain = site name), started first;
//   - a versitygw (posix backend in <dir>/<site>/s3) whose NATS event sink
//     publishes every event of every bucket to s3mesh.events.<site>.nats on
//     the site's broker (no --event-filter file: versitygw then sends all
//     events). versitygw exits at start-up if the sink is unreachable and
//     stops sending after ~2 minutes of broker outage, so the lab restarts
//     it after its broker restarts and whenever it exits unexpectedly;
//   - an agent, `s3mesh agent --config <dir>/<site>/site.yaml`, ready when
//     GET http://<http_addr>/healthz answers 200.
//
// Leaf-node links form a full mesh: for each pair x < y, x's broker dials
// y's leaf listener through a lab/proxy TCP proxy run inside the lab
// process, so links can be cut, healed and slowed down. S3 peers are
// reached directly.
//
// The directory keeps everything between runs: ports.json (the ports, fixed
// once), per site the credentials (s3-access-key, s3-secret and
// webhook-token, 0600, generated with crypto/rand), site.yaml (rewritten at
// each start), the data, the broker's store, the agent's state and logs/
// (<proc>.log, appended); lab.lock is held (flock) while a lab runs. Once every site is ready, lab.json describes every
// endpoint (see Info), and a running lab is controlled over the unix socket
// <dir>/ctl.sock (see CtlUsage, CtlClient and `s3mesh lab ctl`).
package lab
