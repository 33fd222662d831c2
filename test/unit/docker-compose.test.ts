// docker-compose.yml is for users; no Docker engine runs here. Where `docker compose` exists it validates the
// file; everywhere, the tiercache services' commands and environments must pass the real config loader.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
}

// As docker compose reads it with none of the variables set: `${NAME:-default}` becomes the default.
const compose = parse(readFileSync('docker-compose.yml', 'utf8').replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1'), {
  merge: true,
}) as {
  services: Record<string, Service>;
};

function composeAvailable(): boolean {
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('docker-compose.yml', () => {
  it.runIf(composeAvailable())('is valid for docker compose', () => {
    execFileSync('docker', ['compose', 'config', '--quiet'], { stdio: 'pipe' });
  });

  it('pins every image and runs one writer and two readers on different ports', () => {
    const services = compose.services;
    for (const [name, s] of Object.entries(services)) {
      if (s.image) expect(s.image, name).toMatch(/:\d+\.\d+\.\d+/);
    }
    const tiercache = Object.entries(services).filter(([, s]) => s.build);
    const modes = tiercache.map(([, s]) => loadConfig(s.command ?? [], s.environment ?? {}).mode).sort();
    expect(modes).toEqual(['reader', 'reader', 'writer']);
    const ports = tiercache.map(([, s]) => loadConfig(s.command ?? [], s.environment ?? {}).port);
    expect(new Set(ports).size).toBe(3);
  });

  it('gives each tiercache service a configuration the service accepts, on the real backends', () => {
    for (const [name, s] of Object.entries(compose.services).filter(([, s]) => s.build)) {
      const config = loadConfig(s.command ?? [], s.environment ?? {});
      expect(config.redisUrl, name).toBe('redis://redis:6379');
      expect(config.kafkaBrokers, name).toEqual(['kafka:9092']);
      expect(config.host, name).toBe('0.0.0.0');
    }
  });

  it('sets tokens: listening on every interface, no service takes anonymous writes or reads', () => {
    for (const [name, s] of Object.entries(compose.services).filter(([, s]) => s.build)) {
      const config = loadConfig(s.command ?? [], s.environment ?? {});
      expect(config.writeTokens.length, name).toBeGreaterThan(0);
      expect(config.readTokens.length, name).toBeGreaterThan(0);
      expect(config.allowAnonymousWrites, name).toBe(false);
    }
  });
});
