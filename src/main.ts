// The one entry point: `node dist/main.js --mode=reader|writer|all --port N --host H` (flags and
// environment variables as in README "Configuration", `--help` lists them); with --workers=N, the primary
// of N reader processes (src/workers.ts). A start-up failure is one line
// on stderr naming the cause and the fix; SIGINT / SIGTERM stop within SHUTDOWN_TIMEOUT_MS, a second one
// at once.
import { startApp, StartupError, type App } from './app.js';
import { ConfigError, loadConfig, usage, wantsHelp, type Config } from './config.js';
import { log, setLogLevel } from './observability.js';
import { runPrimary, workerIndex } from './workers.js';

function fail(message: string, code: number): never {
  process.stderr.write(`tiercache: ${message}\n`);
  process.exit(code);
}

function configure(argv: readonly string[]): Config {
  if (wantsHelp(argv)) {
    process.stdout.write(usage());
    process.exit(0);
  }
  try {
    return loadConfig(argv, process.env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
}

/**
 * SIGINT / SIGTERM stop the process within `timeoutMs`; a second one exits at once. Installed before
 * start-up, so that a signal arriving while (or just after) the app starts is ours to handle, not Node's
 * default (which ends the process at once, leaving consumer groups and connections behind).
 */
function stopOnSignals(timeoutMs: number): { started(app: App): void } {
  let app: App | null = null;
  let stopping = false;
  const close = (running: App): void => {
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error('unclean stop', { error, notDone: running.pendingClose() });
        process.exit(1);
      },
    );
  };
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // The operator does not want to wait: leave now, saying what is left undone.
      const notDone = app ? app.pendingClose().join(', ') || 'nothing' : 'start-up';
      fail(`${signal} again: exiting now; not done: ${notDone}`, 130);
    }
    stopping = true;
    log.info('stopping', { signal, timeoutMs });
    setTimeout(() => {
      log.error('stop ran out of time; exiting without finishing', {
        timeoutMs,
        notDone: app ? app.pendingClose() : ['start-up'],
      });
      process.exit(1);
    }, timeoutMs);
    if (app) close(app);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return {
    started(running) {
      app = running;
      // A signal that came during start-up: stop now that there is something to close.
      if (stopping) close(running);
    },
  };
}

async function main(): Promise<void> {
  const config = configure(process.argv.slice(2));
  setLogLevel(config.logLevel);
  if (config.workers > 1) {
    const index = workerIndex();
    if (index === undefined) return runPrimary(config.workers);
    // Its own consumer group (invariant 3: every reader receives every change).
    config.instanceId = `${config.instanceId}-w${index}`;
  }
  // A start-up whose every pending step was dropped would otherwise end the process silently, with 0.
  const stalled = (): never =>
    fail('start-up ended half way with nothing left to do; LOG_LEVEL=debug may say why', 1);
  process.once('beforeExit', stalled);
  const signals = stopOnSignals(config.shutdownTimeoutMs);
  let app: App;
  try {
    app = await startApp(config);
    process.off('beforeExit', stalled);
  } catch (error) {
    if (error instanceof StartupError) fail(error.message, 1);
    // Unforeseen: still one line, and the stack for whoever asks for it.
    log.debug('start-up failure', { error });
    fail(
      `could not start: ${error instanceof Error ? error.message : String(error)} (LOG_LEVEL=debug shows the stack)`,
      1,
    );
  }
  signals.started(app);
}

void main();
