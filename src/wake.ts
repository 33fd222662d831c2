// Waiting that can be cut short: one helper for every loop and claim that sleeps until either its time is
// up or something it waits for happens.

/**
 * Resolves after `ms`, or as soon as any function in `wakers` is called (all of them are, typically, when
 * the awaited thing happens or the owner closes). Its own waker is removed either way.
 */
export function sleepUnlessWoken(wakers: Set<() => void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const wake = (): void => {
      clearTimeout(timer);
      wakers.delete(wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    wakers.add(wake);
  });
}

/** Calls every waker in the set (a copy: each removes itself while the loop runs). */
export function wakeAll(wakers: Set<() => void>): void {
  for (const wake of [...wakers]) wake();
}
