// Time as the domain and the embedded adapters see it: injected, so tests move it instead of sleeping.

export interface Clock {
  /** Wall-clock ms since the epoch, like Date.now(): compared with the store's absolute expiries. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
