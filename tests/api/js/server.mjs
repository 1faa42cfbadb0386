// Starts colony-serve-local (the `colony serve` of a single machine) on an
// ephemeral port of 127.0.0.1 and waits until the model is ready.
//   const srv = await startServer(modelPath, ['--parallel', '4']);
//   ... srv.url ...
//   await srv.stop();
// Environment: COLONY_SERVE = path of the colony-serve-local binary.
// startProcess(exe, args) starts another program with the same protocol;
// startCluster(model) starts a three-node cluster on this machine
// (`colony run --workers 2`, COLONY_BIN = path of the colony binary).
import { spawn } from 'node:child_process';

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set (run this test through ctest)`);
  return v;
}

export async function startServer(model, extraArgs = [], extraEnv = {}) {
  const args = ['-m', model, '--host', '127.0.0.1', '--api-port', '0', '-t', '2', ...extraArgs];
  return startProcess(env('COLONY_SERVE'), args, extraEnv);
}

// The three stages split stories260K's 5 blocks 2/2/1 (the measured planner
// would rightly keep a model this small on one node).
export async function startCluster(model, extraArgs = [], extraEnv = {}) {
  const args = ['run', '-m', model, '--workers', '2', '--split', '0:2,2:4,4:5', '--api-port', '0', '-t', '1',
    ...extraArgs];
  return startProcess(env('COLONY_BIN'), args, extraEnv);
}

// Starts any program that prints "colony: listening on URL/" and then
// "colony: model NAME ready" on stdout, as colony serve does.
export async function startProcess(exe, args, extraEnv = {}) {
  const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...extraEnv } });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 90 s\nstdout:\n${out}\nstderr:\n${err}`)), 90000);
    let base = null;
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (https?:\/\/[^\s]+?)\/?\n/);
      if (m) base = m[1];
      if (base && /model .* ready\n/.test(out)) {
        clearTimeout(timer);
        resolve(base);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}\nstdout:\n${out}\nstderr:\n${err}`));
    });
  });
  return {
    url,
    pid: child.pid,
    stderr: () => err,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.removeAllListeners('exit');
      const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
      child.kill('SIGTERM');
      return exited;
    },
  };
}

// Checks a /v1/cluster body: every node ready, their layer ranges in order
// and together covering the model's blocks exactly once.
export function assertLayersCoverModel(assert, cluster) {
  let next = 0;
  for (const n of cluster.nodes) {
    assert.equal(n.state, 'ready');
    assert.equal(n.layers.first, next);
    assert.ok(n.layers.last > n.layers.first);
    next = n.layers.last;
  }
  assert.equal(next, cluster.model.n_layer);
}
