// Tests are written in TypeScript and run from their build (npm run build compiles test/ into build/).
module.exports = {
  spec: ['build/test/**/*.test.js'],
  timeout: 120000,
  slow: 5000,
  exit: true,
}
