// Browser test of the relais console in real Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core. Started by tests/browser/browser_test.cpp, which runs relais and a
// destination on loopback and passes everything through the environment:
//   RELAIS_URL, SUPPORT_USER/SUPPORT_PASSWORD, ADMIN_USER/ADMIN_PASSWORD, RDV (the RDV number
//   whose delivery failed), MESSAGE_ID (a stored message for the mapping test), MAPPING,
//   SCREENSHOTS (a folder), CHROMIUM (the browser binary).
// Exits 0 when every step passed; otherwise prints the failed step and exits 1.
import { check, env, launch, login as loginAt, logout, timeout } from './console_lib.mjs';
import fs from 'node:fs';
import path from 'node:path';

const base = env('RELAIS_URL');
const shots = env('SCREENSHOTS');
const rdv = env('RDV');
const mapping = env('MAPPING');
fs.mkdirSync(shots, { recursive: true });

let step = 'start';

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });
}

const login = (page, user, password) => loginAt(page, base, user, password);

const browser = await launch();
const outside = [];
let code = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'fr-FR' });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  // No request may leave relais (no CDN, no font, no analytics).
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) outside.push(r.url()); });
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  // --- support: find the failed delivery of the RDV, read the explanation, retry it ---
  step = 'support logs in';
  await login(page, env('SUPPORT_USER'), env('SUPPORT_PASSWORD'));
  await page.locator('.carte').first().waitFor();
  await page.getByRole('cell', { name: 'bloquees' }).waitFor();
  await shot(page, 'tableau-de-bord');
  check(await page.getByRole('link', { name: 'Connecteurs' }).isHidden(), 'support sees no admin menu');

  step = 'support finds the failed delivery of RDV ' + rdv;
  await page.getByRole('link', { name: 'Échecs' }).click();
  await page.getByLabel('Objet ou texte').fill('RDV ' + rdv);
  await page.getByLabel('Objet ou texte').press('Enter');
  const lien = page.getByRole('link', { name: 'RDV ' + rdv, exact: true });
  await lien.waitFor();
  await shot(page, 'echecs');
  await lien.click();

  step = 'support reads the explanation';
  await page.getByRole('heading', { name: 'RDV ' + rdv }).waitFor();
  const explication = await page.locator('.explication').innerText();
  check(explication.includes("L'objet n'existe pas chez le destinataire"), 'explanation shown: ' + explication);
  check(explication.includes('Action conseillée'), 'suggested action shown');
  const contenu = await page.locator('pre').first().innerText();
  check(!contenu.includes('DUPONT'), 'support sees personal data masked');
  check(contenu.includes('•••'), 'masked fields are marked');
  await shot(page, 'detail-livraison');

  step = 'support retries and sees it delivered';
  await page.getByRole('button', { name: 'Relancer', exact: true }).click();
  await page.getByText('Livraison relancée.').waitFor();
  let delivered = false;
  for (let i = 0; i < 60 && !delivered; i++) {
    await page.reload();
    await page.getByRole('heading', { name: 'RDV ' + rdv }).waitFor();
    delivered = (await page.locator('p .etat').first().innerText()) === 'Livrée';
    if (!delivered) await page.waitForTimeout(500);
  }
  check(delivered, 'the delivery is shown as delivered after the retry');
  await shot(page, 'detail-livree');

  step = 'support retries the rest by filter: count first, then confirmation';
  await page.getByRole('link', { name: 'Échecs' }).click();
  await page.getByRole('link', { name: 'RDV 91878', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Relancer toutes celles du filtre…' }).click();
  await page.getByRole('heading', { name: 'Relancer 1 livraison(s) ?' }).waitFor();
  await shot(page, 'relance-groupee');
  await page.getByRole('button', { name: 'Confirmer la relance de 1' }).click();
  await page.getByText('1 livraison(s) relancée(s).').waitFor();

  step = 'support cannot publish a mapping';
  await page.goto(base + '/console/#/mapping/' + mapping);
  await page.getByRole('heading', { name: 'Mapping ' + mapping }).waitFor();
  check(await page.getByRole('button', { name: 'Publier' }).count() === 0, 'no publish button for support');
  check(await page.locator('textarea').first().getAttribute('readonly') !== null, 'the editor is read-only for support');
  const forced = await page.evaluate(async (m) => {
    const s = await (await fetch('/api/v1/session')).json();
    const r = await fetch('/api/v1/mappings/' + m + '/activate', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf }, body: JSON.stringify({ version: 1 }) });
    return r.status;
  }, mapping);
  check(forced === 403, 'the API refuses support publishing (got ' + forced + ')');
  await logout(page);

  // --- admin: edit with an error, see it, fix it, test on a stored message, publish, roll back ---
  step = 'admin logs in';
  await login(page, env('ADMIN_USER'), env('ADMIN_PASSWORD'));
  await page.goto(base + '/console/#/mapping/' + mapping);
  await page.getByRole('heading', { name: 'Mapping ' + mapping }).waitFor();
  const actif = await page.locator('main > p').first().innerText();
  const editeur = page.locator('textarea').first();
  const original = await editeur.inputValue();

  step = 'admin types an error and sees it';
  const faux = original.replace('fields:\n', 'fields:\n  casse: fonction_inconnue($.rdv.id)\n');
  check(faux !== original, 'the mapping has a fields section');
  await editeur.fill(faux);
  await page.locator('#diag .diagnostics').waitFor();
  const diag = await page.locator('#diag').innerText();
  check(/fonction_inconnue/.test(diag), 'the diagnostic names the unknown function: ' + diag);
  await shot(page, 'mapping-erreur');

  step = 'admin fixes it';
  const corrige = original.replace('fields:\n', "fields:\n  source_relais: 'console'\n");
  await editeur.fill(corrige);
  await page.getByText('✔ Mapping valide').waitFor();

  step = 'admin tests it on a stored message';
  await page.getByLabel('ou message stocké').fill(env('MESSAGE_ID'));
  await page.getByRole('button', { name: 'Tester', exact: true }).click();
  await page.locator('pre', { hasText: 'Résultat' }).waitFor();
  const sortie = await page.locator('pre', { hasText: 'Résultat' }).innerText();
  check(sortie.includes('"source_relais": "console"'), 'the test output has the new field: ' + sortie.slice(0, 200));
  await shot(page, 'mapping-test');

  step = 'admin publishes with a comment';
  await page.getByLabel('Commentaire de publication').fill('ajout de source_relais (test navigateur)');
  await page.getByRole('button', { name: 'Publier' }).click();
  const annonce = await page.getByText(/Version v\d+ publiée\./).innerText();
  const nouvelle = annonce.match(/v\d+/)[0];
  // The page is drawn again after the publication: wait for it to show the new version.
  await page.waitForFunction((t) => document.querySelector('main > p')?.textContent === t,
    'Version active : ' + nouvelle);
  check(nouvelle !== actif.replace('Version active : ', ''), 'the active version changed: ' + actif + ' → ' + nouvelle);

  step = 'admin compares two versions';
  await page.getByRole('button', { name: 'Comparer' }).click();
  await page.locator('.diff .ajout', { hasText: 'source_relais' }).waitFor();
  await shot(page, 'mapping-diff');

  step = 'admin rolls back';
  const ancien = actif.replace('Version active : ', '');
  await page.getByRole('button', { name: 'Revenir à la ' + ancien }).click();
  await page.getByText('Version ' + ancien + ' réactivée.').waitFor();
  await page.waitForFunction((t) => document.querySelector('main > p')?.textContent === t, actif);

  step = 'admin pages';
  await page.getByRole('link', { name: 'Connecteurs' }).click();
  await page.getByRole('button', { name: 'Tester la connexion' }).first().click();
  await page.getByText('✔ Connexion réussie', { exact: false }).first().waitFor();
  await shot(page, 'connecteurs');
  await page.getByRole('link', { name: 'Utilisateurs et jetons' }).click();
  await page.getByRole('heading', { name: 'Jetons d\'API' }).waitFor();
  await shot(page, 'utilisateurs');
  await page.getByRole('link', { name: "Journal d'audit" }).click();
  await page.getByRole('cell', { name: 'mapping.rollback' }).waitFor();
  check(await page.getByRole('cell', { name: 'delivery.retry' }).count() >= 1, 'the retry is in the audit trail');
  await shot(page, 'journal');
  step = 'admin edits a lookup table';
  await page.getByRole('link', { name: 'Tables' }).click();
  await page.getByRole('heading', { name: 'Tables de correspondance' }).waitFor();
  await page.getByRole('link', { name: 'cms', exact: true }).click();
  await page.getByRole('heading', { name: 'Table cms' }).waitFor();
  const zone = page.locator('textarea').first();
  await zone.fill((await zone.inputValue()).trimEnd() + '\nCMS de test,"1 rue du Test, 76000 Rouen",02.35.00.00.42,UTAS Test\n');
  await page.getByLabel('Commentaire').fill('ajout du CMS de test');
  await page.getByRole('button', { name: 'Enregistrer et activer' }).click();
  await page.getByText(/Table enregistrée \(v\d+\)\./).waitFor();
  await shot(page, 'table');

  step = 'keyboard: the skip link and the menu are reachable';
  await page.goto(base + '/console/#/');
  await page.reload();
  await page.getByRole('heading', { name: 'Tableau de bord' }).waitFor();
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.textContent) === 'Aller au contenu', 'first Tab reaches the skip link');
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.textContent) === 'Tableau de bord', 'the next Tab reaches the menu');

  check(consoleErrors.length === 0, 'no script error: ' + consoleErrors.join('; '));
  check(outside.length === 0, 'no outside request: ' + outside.join(', '));
  console.log('browser test passed: ' + fs.readdirSync(shots).length + ' screenshot(s) in ' + shots);
} catch (e) {
  console.error('browser test FAILED at step "' + step + '": ' + (e && e.stack ? e.stack : e));
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
