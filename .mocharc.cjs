// Tests are written in TypeScript and run from their build (npm run build compiles test/ into build/).
// Files run in 3 worker processes at once: most tests wait on sockets, child processes and the
// disk, so 3 workers keep 2 cores busy; each file has its own pool, host double and remote.
module.exports = {
  spec: ['build/test/**/*.test.js'],
  parallel: true,
  jobs: 3,
  timeout: 120000,
  slow: 5000,
  exit: true,
}
