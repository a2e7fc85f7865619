import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    // SIPp, tcpdump and tshark runs measure exact packet counts: on a 2-core machine, files running
    // side by side starve SIPp's media timing, so files run one at a time.
    fileParallelism: false,
  },
});
