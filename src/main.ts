// The one entry point: `node dist/main.js --mode=reader|writer|all --port N --host H` (flags and
// environment variables as in README "Configuration"); stops cleanly on SIGINT / SIGTERM.
import { startApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { log, setLogLevel } from './observability.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`tiercache: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  setLogLevel(config.logLevel);
  const app = await startApp(config);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error('unclean stop', { error });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: unknown) => {
  log.error('tiercache failed to start', { error });
  process.exit(1);
});
