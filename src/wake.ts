// Waiting that can be cut short: one helper for every loop and claim that sleeps until either its time is
// up or something it waits for happens.

/**
 * Resolves after `ms` with false, or as soon as any function in `wakers` is called with true (all of them
 * are, typically, when the awaited thing happens or the owner closes). Its own waker is removed either way.
 */
export function sleepUnlessWoken(wakers: Set<() => void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const end = (woken: boolean): void => {
      clearTimeout(timer);
      wakers.delete(wake);
      resolve(woken);
    };
    const wake = (): void => end(true);
    const timer = setTimeout(() => end(false), ms);
    wakers.add(wake);
  });
}

/** Calls every waker in the set (a copy: each removes itself while the loop runs). */
export function wakeAll(wakers: Set<() => void>): void {
  for (const wake of [...wakers]) wake();
}
