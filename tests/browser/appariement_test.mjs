// Browser test of the "Appariements à traiter" page in real Chromium (playwright-core). Started
// by tests/browser/appariement_browser_test.cpp, which passes through the environment:
//   RELAIS_URL, SUPPORT_USER/SUPPORT_PASSWORD, AUDITOR_USER/AUDITOR_PASSWORD, PERSON (the local
//   person waiting), CHOSEN and HOMONYM (the two Genesis candidates), SCREENSHOTS, CHROMIUM.
// Exits 0 when every step passed; otherwise prints the failed step and exits 1.
import { check, env, launch, login as loginAt, logout, timeout } from './console_lib.mjs';
import fs from 'node:fs';
import path from 'node:path';

const base = env('RELAIS_URL');
const shots = env('SCREENSHOTS');
const person = env('PERSON');
const chosen = env('CHOSEN');
const homonym = env('HOMONYM');
fs.mkdirSync(shots, { recursive: true });

let step = 'start';

const login = (page, user, password) => loginAt(page, base, user, password);

const browser = await launch();
let code = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'fr-FR' });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);

  step = 'the auditor sees the list, identities masked, and cannot choose';
  await login(page, env('AUDITOR_USER'), env('AUDITOR_PASSWORD'));
  await page.getByRole('link', { name: '1 appariement(s) à traiter' }).click();
  await page.getByRole('heading', { name: 'Appariements à traiter' }).waitFor();
  await page.getByRole('heading', { name: new RegExp(person) }).waitFor();
  let texte = await page.locator('main').innerText();
  check(texte.includes(chosen) && texte.includes(homonym), 'both candidates listed');
  check(!texte.includes('DUPONT') && !texte.includes('1962-09-22'), 'identity masked for the auditor: ' + texte);
  check(texte.includes('masquée pour votre rôle'), 'the page says it is masked');
  check(await page.getByRole('button', { name: /Choisir la fiche/ }).count() === 0, 'no choice for the auditor');
  await page.screenshot({ path: path.join(shots, 'appariements-auditeur.png'), fullPage: true });
  await logout(page);

  step = 'the support desk sees the candidates and chooses one';
  await login(page, env('SUPPORT_USER'), env('SUPPORT_PASSWORD'));
  await page.getByRole('link', { name: 'Appariements à traiter' }).first().click();
  await page.getByRole('heading', { name: new RegExp(person) }).waitFor();
  texte = await page.locator('main').innerText();
  check(texte.includes('DUPONT') && texte.includes('ROUEN') && texte.includes('DIEPPE'), 'the support desk sees what tells the homonyms apart: ' + texte);
  check(texte.includes('2 envoi(s) en attente'), 'the waiting deliveries are counted');
  await page.screenshot({ path: path.join(shots, 'appariements-support.png'), fullPage: true });
  await page.getByRole('button', { name: 'Choisir la fiche ' + chosen }).click();
  await page.getByText('Personne appariée à la fiche ' + chosen).waitFor();

  step = 'the pairing is listed as done, then undone with a reason';
  await page.getByLabel('État').selectOption('apparie');
  await page.getByRole('heading', { name: new RegExp(person) }).waitFor();
  texte = await page.locator('main').innerText();
  check(texte.includes('fiche ' + chosen) && texte.includes('console, par ' + env('SUPPORT_USER')), 'paired through the console: ' + texte);
  await page.screenshot({ path: path.join(shots, 'apparie.png'), fullPage: true });
  // Without a reason the form does not go (the field is required).
  check(await page.getByLabel('Motif pour défaire').evaluate((el) => !el.checkValidity()), 'a reason is required');
  await page.getByLabel('Motif pour défaire').fill('homonyme : mauvaise fiche');
  await page.getByRole('button', { name: 'Défaire l\'appariement' }).click();
  await page.getByText('Appariement défait').waitFor();
  await logout(page);
  console.log('appariement browser test: every step passed');
} catch (e) {
  console.error('step failed: ' + step + '\n' + (e && e.stack ? e.stack : e));
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
