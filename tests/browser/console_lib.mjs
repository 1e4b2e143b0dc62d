// What the console's browser tests share (console_test.mjs, appariement_test.mjs): the
// environment, assertions, logging in and out through the console's own form, and Chromium
// launched the way these machines need it (Debian's binary, no sandbox as root, no network of
// its own; playwright gives it a fresh temporary profile).
import { chromium } from 'playwright-core';

export const timeout = 60000;

export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error('environment variable ' + k + ' is not set');
  return v;
};

export function check(cond, what) {
  if (!cond) throw new Error('assertion failed: ' + what);
}

export async function login(page, base, user, password) {
  await page.goto(base + '/console/#/connexion');
  await page.getByLabel('Identifiant').fill(user);
  await page.getByLabel('Mot de passe').fill(password);
  await page.getByRole('button', { name: 'Se connecter' }).click();
  await page.getByRole('heading', { name: 'Tableau de bord' }).waitFor({ timeout });
}

export async function logout(page) {
  await page.getByRole('button', { name: 'Se déconnecter' }).click();
  await page.getByRole('heading', { name: 'Connexion' }).waitFor({ timeout });
}

export function launch() {
  return chromium.launch({
    executablePath: env('CHROMIUM'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
