// Long campaigns (random damage, crash kills, interleavings at many timings): npm run test:campaign.
// Each campaign prints its seed and replays it from an environment variable; CI runs them after
// npm test, within its own time budget.
module.exports = {
  spec: ['build/test/**/*.campaign.js'],
  timeout: 900000,
  slow: 60000,
  exit: true,
}
