// Test app for reaping: makes a grandchild (`sleep $ORPHAN_SLEEP`, default
// 1.5 s) that outlives its parent, and prints "orphan <pid>".
//
// - EXIT_AFTER_FORK=1: the grandchild is started in a session of its own
//   (so it also outlives this process group) and this process exits at
//   once: a worker that forks a grandchild and exits.
// - otherwise the grandchild is double-forked through `sh -c 'sleep &'`
//   (sh exits, the sleep is orphaned while this process stays up), and
//   this process waits for SIGTERM.

'use strict';

const { spawn, execFileSync } = require('child_process');

const seconds = process.env.ORPHAN_SLEEP || '1.5';

if (process.env.EXIT_AFTER_FORK === '1') {
  const child = spawn('sleep', [seconds], { detached: true, stdio: 'ignore' });
  child.unref();
  console.log(`orphan ${child.pid}`);
  process.exit(0);
}

const pid = execFileSync('sh', ['-c', `sleep ${seconds} >/dev/null 2>&1 & echo $!`])
  .toString()
  .trim();
console.log(`orphan ${pid}`);
const keepAlive = setInterval(() => {}, 1000);
process.on('SIGTERM', () => {
  clearInterval(keepAlive);
  process.exit(0);
});
