// The benchmark's PM2 configuration: cluster mode with `instances: 'max'`
// (pm2-runtime -i max), and PM2's metrics agent off (`pmx: false`) so the
// workers run the same code as under every other launcher.
module.exports = {
  apps: [
    {
      name: 'bench',
      script: process.env.BENCH_APP,
      instances: 'max',
      exec_mode: 'cluster',
      pmx: false,
      env: { PORT: process.env.BENCH_PORT },
    },
  ],
};
