// The one clock every process of the benchmark stamps with: CLOCK_MONOTONIC
// (process.hrtime), which on Linux is shared by all processes of a machine,
// so a time taken in the load generator and one taken in the fake app can be
// subtracted. Milliseconds as a float (sub-microsecond resolution).

/** Milliseconds on the machine-wide monotonic clock. */
export function now() {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
