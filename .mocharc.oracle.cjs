// Cross-checks with independent tools (qemu-img, vhdimount): npm run test:oracle.
module.exports = {
  spec: ['build/test/**/*.oracle.js'],
  timeout: 300000,
  exit: true,
}
