// Relais console: a small single-page application in plain JavaScript (no framework, no outside
// request). Every datum goes through textContent (never innerHTML). Talks only to /api/v1.
'use strict';

const etat = { moi: null, csrf: '', rafraichir: null };

// ---------- helpers ----------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function annoncer(texte, erreur) {
  const a = document.getElementById('annonce');
  a.textContent = texte || '';
  a.className = 'annonce' + (erreur ? ' erreur' : '');
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.error)) || ('HTTP ' + status));
    this.status = status;
    this.body = body;
  }
}

async function api(method, chemin, corps) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (method !== 'GET') init.headers['X-CSRF-Token'] = etat.csrf;
  if (corps !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(corps);
  }
  const r = await fetch('/api/v1' + chemin, init);
  let body = null;
  const type = r.headers.get('Content-Type') || '';
  if (type.startsWith('application/json')) body = await r.json();
  else body = await r.text();
  if (r.status === 401 && chemin !== '/session') {
    etat.moi = null;
    location.hash = '#/connexion';
    throw new ApiError(401, body);
  }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

function date(t) {
  if (!t) return '—';
  const d = new Date(t);
  return d.toLocaleString('fr-FR', { dateStyle: 'short', timeStyle: 'medium' });
}

function duree(s) {
  if (!s) return '—';
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.round(s / 60) + ' min';
  return (s / 3600).toFixed(1).replace('.', ',') + ' h';
}

const ETATS = {
  dead: 'Bloquée', retrying: 'En échec (nouvel essai prévu)', pending: 'En attente',
  in_flight: 'En cours', delivered: 'Livrée', discarded: 'Écartée', skipped: 'Non concernée',
  open: 'En échec', closed: 'Normal', defer: 'Programmée', throttled: 'Ralentie par le partenaire',
};
// The badge of one attempt of the chronology: its outcome as the delivery states name it.
const ISSUES_ESSAI = { delivered: 'delivered', retry: 'retrying', reject: 'dead', skip: 'skipped', defer: 'defer', throttled: 'throttled' };
function badge(e) { return h('span', { class: 'etat etat-' + e }, ETATS[e] || e); }

function peut(...roles) { return etat.moi && roles.includes(etat.moi.role); }

function json(v) { return typeof v === 'string' ? v : JSON.stringify(v, null, 2); }

function page(titre, ...contenu) {
  const main = document.getElementById('contenu');
  main.replaceChildren(h('h1', {}, titre), ...contenu);
  document.title = titre + ' — Relais';
  return main;
}

function champ(libelle, input) {
  const id = 'c-' + Math.random().toString(36).slice(2);
  input.id = id;
  return h('div', {}, h('label', { for: id }, libelle), input);
}

function erreurDe(e) { return e instanceof ApiError ? e.message : String(e); }

// ---------- connexion ----------
function vueConnexion() {
  document.getElementById('menu').hidden = true;
  document.getElementById('deconnexion').hidden = true;
  document.getElementById('moi').textContent = '';
  const user = h('input', { autocomplete: 'username', required: true });
  const pw = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const msg = h('p', { class: 'diagnostics', role: 'alert' });
  const form = h('form', { class: 'connexion', onsubmit: async (ev) => {
    ev.preventDefault();
    msg.textContent = '';
    try {
      const r = await api('POST', '/session', { user: user.value, password: pw.value });
      etat.csrf = r.csrf;
      etat.moi = { user: r.user, role: r.role };
      location.hash = '#/';
    } catch (e) { msg.textContent = erreurDe(e); }
  } },
  h('h1', {}, 'Connexion'),
  champ('Identifiant', user), champ('Mot de passe', pw), msg,
  h('div', { class: 'boutons' }, h('button', { type: 'submit' }, 'Se connecter')));
  document.getElementById('contenu').replaceChildren(form);
  document.title = 'Connexion — Relais';
  user.focus();
}

// ---------- tableau de bord ----------
function graphe(valeurs) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  const max = Math.max(1, ...valeurs);
  svg.setAttribute('width', '192'); svg.setAttribute('height', '40');
  svg.setAttribute('class', 'graphe'); svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'Livraisons par heure sur 24 heures : ' + valeurs.join(', '));
  valeurs.forEach((v, i) => {
    const r = document.createElementNS(ns, 'rect');
    const hauteur = Math.round((v / max) * 38);
    r.setAttribute('x', String(i * 8)); r.setAttribute('width', '6');
    r.setAttribute('y', String(40 - hauteur)); r.setAttribute('height', String(hauteur));
    svg.append(r);
  });
  return svg;
}

const TYPES_ALERTE = { dead_deliveries: 'Livraisons bloquées', oldest_pending: 'Attente trop longue', connector_failing: 'Connecteur en échec' };

function tableauAlertes(a) {
  if (!a.rules || !a.rules.length) return h('p', { class: 'discret' }, 'Aucune règle d\'alerte configurée.');
  return h('table', {}, h('caption', { class: 'discret' }, 'Envoi par ' + a.channels.join(' et ') + ' ; une alerte au plus par règle pendant la période de silence.'),
    h('thead', {}, h('tr', {}, ['Règle', 'Surveille', 'État', 'Mesure', 'Envoyées', 'Dernier envoi', 'Déclenchements silencieux'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, a.rules.map((r) => h('tr', {}, h('td', {}, r.name), h('td', {}, TYPES_ALERTE[r.kind] || r.kind, r.destination ? ' (' + r.destination + ')' : ''),
      h('td', {}, h('span', { class: 'etat ' + (r.firing ? 'etat-dead' : 'etat-closed') }, r.firing ? 'Déclenchée' : 'Calme')), h('td', { class: 'nombre' }, r.value), h('td', { class: 'nombre' }, r.sent),
      h('td', {}, date(r.last_sent), r.last_error ? h('span', { class: 'diagnostics' }, ' ' + r.last_error) : ''), h('td', { class: 'nombre' }, r.suppressed)))));
}

// A partner's "slow down" is not a failure: say until when, or how many accounts it holds.
function ralenti(d) {
  if (d.throttled_until) return h('span', { class: 'etat etat-retrying' }, 'oui, jusqu\'à ' + date(d.throttled_until));
  if (d.throttled_accounts) return h('span', { class: 'etat etat-retrying' }, d.throttled_accounts === 1 ? '1 compte' : d.throttled_accounts + ' comptes');
  return 'non';
}

// The polling sources (a database, a folder): reachable or not, and why; what they refused.
function tableauSources(sources) {
  const interrogees = sources.items.filter((s) => s.polled);
  if (!interrogees.length) return h('p', { class: 'discret' }, 'Aucune source interrogée (les messages arrivent par l\'API).');
  return h('table', {}, h('thead', {}, h('tr', {}, ['Source', 'Type', 'État', 'Dernière lecture', 'Dernier enregistrement', 'Enregistrés', 'Refusés'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, interrogees.map((s) => h('tr', {}, h('td', {}, s.source), h('td', {}, s.kind),
      h('td', {}, s.failing ? [h('span', { class: 'etat etat-dead' }, 'Injoignable'), h('span', { class: 'diagnostics' }, ' ' + (s.last_error || '') + ' — nouvel essai ' + date(s.next_poll_at))] : h('span', { class: 'etat etat-closed' }, 'Normal')),
      h('td', {}, date(s.last_poll_at)), h('td', {}, date(s.last_record_at)), h('td', { class: 'nombre' }, s.records),
      h('td', { class: 'nombre' }, s.rejected ? h('a', { href: '#/refus/' + encodeURIComponent(s.source) }, s.rejected) : 0)))));
}

async function vueTableau() {
  const [o, alertes, sources, attente] = await Promise.all([api('GET', '/overview'), api('GET', '/alerts'), api('GET', '/sources'), api('GET', '/pairings?state=en_attente&limit=1')]);
  const cartes = o.destinations.map((d) => h('section', { class: 'carte', 'aria-labelledby': 'd-' + d.destination },
    h('h2', { id: 'd-' + d.destination }, d.destination, ' ', badge(d.circuit)),
    h('dl', {},
      h('dt', {}, 'Livrées aujourd\'hui'), h('dd', {}, d.delivered_today),
      h('dt', {}, 'En échec aujourd\'hui'), h('dd', {}, d.failed_today),
      h('dt', {}, 'Bloquées aujourd\'hui'), h('dd', {}, h('a', { href: '#/echecs?destination=' + encodeURIComponent(d.destination) + '&state=dead' }, d.dead_today)),
      h('dt', {}, 'File d\'attente'), h('dd', {}, d.queue_depth),
      h('dt', {}, 'Ralenti par le partenaire'), h('dd', {}, ralenti(d)),
      h('dt', {}, 'Plus ancienne en attente'), h('dd', {}, duree(d.oldest_pending_age_s)),
      h('dt', {}, 'Dernier succès'), h('dd', {}, date(d.last_success)),
      h('dt', {}, 'Débit (24 h)'), h('dd', {}, graphe(d.delivered_per_hour)))));
  page('Tableau de bord', h('p', { class: 'discret' }, 'Situation au ' + date(o.at) + ' — connecteur, état du circuit et chiffres du jour par destination (mise à jour toutes les 30 secondes).'),
    h('div', { class: 'cartes' }, cartes),
    h('p', {}, h('a', { href: '#/appariements' }, attente.waiting + ' appariement(s) à traiter')),
    h('h2', {}, 'Sources interrogées'), tableauSources(sources),
    h('h2', {}, 'Alertes'), tableauAlertes(alertes));
  clearTimeout(etat.rafraichir);
  etat.rafraichir = setTimeout(() => { if ((location.hash || '#/') === '#/' && etat.moi) route(); }, 30000);
}

// ---------- échecs ----------
function paramsDe(hash) {
  const i = hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : hash.slice(i + 1));
}

async function vueEchecs(params) {
  const champs = {
    q: h('input', { type: 'search', value: params.get('q') || '', placeholder: 'RDV 91877, Demande 547…' }),
    state: h('select', {}, h('option', { value: '' }, 'Échecs et bloquées'), h('option', { value: 'failed' }, 'En échec'), h('option', { value: 'dead' }, 'Bloquées')),
    destination: h('input', { value: params.get('destination') || '' }),
    route: h('input', { value: params.get('route') || '' }),
    class: h('select', {}, ['', 'http', 'network', 'timeout', 'mapping', 'enrichment', 'config', 'mailbox', 'store'].map((c) => h('option', { value: c }, c || 'Toutes'))),
    from: h('input', { type: 'date', value: params.get('from') || '' }),
    to: h('input', { type: 'date', value: params.get('to') || '' }),
  };
  champs.state.value = params.get('state') || '';
  champs.class.value = params.get('class') || '';
  const filtre = () => {
    const p = new URLSearchParams();
    for (const [k, el] of Object.entries(champs)) if (el.value) p.set(k, el.value);
    return p;
  };
  const form = h('form', { class: 'filtres', role: 'search', onsubmit: (ev) => { ev.preventDefault(); location.hash = '#/echecs?' + filtre().toString(); } },
    champ('Objet ou texte', champs.q), champ('État', champs.state), champ('Destination', champs.destination),
    champ('Route', champs.route), champ('Classe d\'erreur', champs.class), champ('Du', champs.from), champ('Au', champs.to),
    h('button', { type: 'submit' }, 'Filtrer'));
  const liste = await api('GET', '/deliveries?' + params.toString());
  const lignes = liste.items.map((d) => h('tr', {},
    h('td', {}, h('a', { href: '#/livraison/' + d.delivery_id }, d.object || d.correlation_key || d.message_id)),
    h('td', {}, d.type), h('td', {}, d.destination), h('td', {}, badge(d.state)),
    h('td', {}, d.explanation), h('td', { class: 'nombre' }, d.attempts), h('td', {}, date(d.updated_at))));
  const table = h('table', {}, h('caption', { class: 'discret' }, liste.items.length + ' livraison(s) affichée(s)'),
    h('thead', {}, h('tr', {}, ['Objet', 'Type', 'Destination', 'État', 'Erreur', 'Essais', 'Dernière mise à jour'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, lignes));
  const actions = h('div', { class: 'boutons' });
  if (peut('admin', 'support')) {
    actions.append(h('button', { type: 'button', onclick: () => relanceGroupee(filtre()) }, 'Relancer toutes celles du filtre…'));
  }
  const suite = new URLSearchParams(params);
  if (liste.next_cursor) suite.set('cursor', liste.next_cursor);
  const pages = h('p', {}, params.get('cursor') ? h('a', { href: '#/echecs?' + filtre().toString() }, '« Premières') : '', ' ',
    liste.next_cursor ? h('a', { href: '#/echecs?' + suite.toString() }, 'Suivantes »') : '');
  page('Échecs de livraison', form, actions, liste.items.length ? table : h('p', {}, 'Aucune livraison ne correspond.'), pages);
}

async function relanceGroupee(p) {
  const filter = {};
  for (const [k, v] of p.entries()) filter[k] = v;
  try {
    const c = await api('POST', '/deliveries:retry', { filter });
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-titre' });
    dlg.append(h('h2', { id: 'dlg-titre' }, 'Relancer ' + c.count + ' livraison(s) ?'),
      h('p', {}, 'Toutes les livraisons correspondant au filtre seront relancées (au plus ' + c.max + ').'),
      h('div', { class: 'boutons' },
        h('button', { type: 'button', onclick: async () => {
          dlg.close(); dlg.remove();
          try {
            const r = await api('POST', '/deliveries:retry', { filter, confirm: c.count });
            annoncer(r.retried + ' livraison(s) relancée(s)' + (r.refused ? ', ' + r.refused + ' refusée(s)' : '') + '.');
            route();
          } catch (e) { annoncer(erreurDe(e), true); }
        } }, 'Confirmer la relance de ' + c.count),
        h('button', { type: 'button', class: 'secondaire', onclick: () => { dlg.close(); dlg.remove(); } }, 'Annuler')));
    dlg.addEventListener('close', () => dlg.remove());  // Échap ferme aussi
    document.body.append(dlg);
    dlg.showModal();
  } catch (e) { annoncer(erreurDe(e), true); }
}

// ---------- détail d'une livraison ----------
async function vueLivraison(id) {
  const d = await api('GET', '/deliveries/' + encodeURIComponent(id));
  const blocs = [];
  blocs.push(h('p', {}, badge(d.state), ' ', d.type, ' → ', h('strong', {}, d.destination), ' (route ', d.route, ')', d.mapping ? ' — mapping ' + d.mapping + ' v' + d.mapping_version : ''));
  if (d.error && d.state !== 'delivered') {
    blocs.push(h('div', { class: 'explication', role: 'note' },
      h('div', { class: 'titre' }, d.error.explanation),
      h('div', { class: 'action' }, h('strong', {}, 'Action conseillée : '), d.error.action),
      h('div', { class: 'discret' }, 'Détail technique : ', d.error.class, d.error.code ? ' ' + d.error.code : '', ' — ', d.error.text)));
  }
  if (d.flags) blocs.push(h('p', {}, 'À vérifier : ', d.flags.join(' ; ')));
  const actions = h('div', { class: 'boutons' });
  if (peut('admin', 'support') && ['dead', 'retrying', 'pending'].includes(d.state)) {
    actions.append(h('button', { type: 'button', onclick: async () => {
      try { await api('POST', '/deliveries/' + id + '/retry', {}); annoncer('Livraison relancée.'); setTimeout(route, 500); } catch (e) { annoncer(erreurDe(e), true); }
    } }, 'Relancer'));
    const motif = h('input', { required: true, size: 40 });
    actions.append(h('form', { class: 'boutons', onsubmit: async (ev) => {
      ev.preventDefault();
      if (!motif.value.trim()) { annoncer('Un motif est obligatoire pour écarter.', true); motif.focus(); return; }
      try { await api('POST', '/deliveries/' + id + '/discard', { reason: motif.value }); annoncer('Livraison écartée.'); route(); } catch (e) { annoncer(erreurDe(e), true); }
    } }, champ('Motif pour écarter', motif), h('button', { type: 'submit', class: 'danger' }, 'Écarter')));
  }
  blocs.push(actions);
  blocs.push(h('h2', {}, 'Chronologie des essais'));
  blocs.push(h('ol', { class: 'chronologie' }, h('li', {}, date(d.received_at), ' — message reçu de ', d.source),
    d.attempts.map((a) => h('li', {}, date(a.at), ' — ', badge(ISSUES_ESSAI[a.outcome] || 'dead'), ' ',
      a.explanation || a.text || '', a.code ? ' (' + a.class + ' ' + a.code + ')' : '', ' — ', a.duration_ms, ' ms'))));
  blocs.push(h('h2', {}, 'Contenu'));
  if (d.erased) {
    // Purged by the retention (type "purge") or erased on request: the label says which.
    const purge = d.erased.type === 'purge';
    blocs.push(h('p', { class: 'efface', role: 'note' }, 'Contenu ', d.erased.label, ' le ', date(d.erased.le),
      purge ? '' : [' par ', d.erased.par, ' — motif : ', d.erased.motif],
      '. Le contenu ci-dessous est la trace ', purge ? 'de la purge.' : 'de l\'effacement.'));
  }
  if (d.masked) blocs.push(h('p', { class: 'discret' }, 'Les données personnelles sont masquées pour votre rôle.'));
  blocs.push(h('div', { class: 'colonnes' },
    h('section', {}, h('h3', {}, 'Avant transformation'), h('pre', { tabindex: 0 }, json(d.payload_before))),
    h('section', {}, h('h3', {}, 'Après transformation'), h('pre', { tabindex: 0 }, d.payload_after === null ? '(pas encore transformé, ou sans mapping)' : json(d.payload_after)))));
  blocs.push(h('p', { class: 'discret' }, 'Message ', d.message_id, ' — livraison ', d.delivery_id));
  page(d.object || 'Livraison ' + id, ...blocs);
}

// ---------- appariements ----------
const ETATS_APPARIEMENT = { en_attente: 'À traiter', apparie: 'Apparié', defait: 'Défait' };
const LIBELLES_FICHE = {
  nom_naissance: 'Nom de naissance', nomNaissance: 'Nom de naissance', nom_usage: 'Nom d\'usage', nomUsage: 'Nom d\'usage',
  prenoms: 'Prénoms', prenom: 'Prénom', date_naissance: 'Né(e) le', dateNaissance: 'Né(e) le', sexe: 'Sexe', commune: 'Commune',
};

function fiche(summary) {
  return h('dl', { class: 'fiche' }, Object.entries(summary || {}).flatMap(([k, v]) => [h('dt', {}, LIBELLES_FICHE[k] || k), h('dd', {}, v === null ? '—' : String(v))]));
}

async function choisir(p, externe) {
  try {
    const r = await api('POST', '/pairings/' + p.id + '/choice', { external_id: externe });
    annoncer('Personne appariée à la fiche ' + externe + ' ; ' + r.woken + ' envoi(s) repris.');
    route();
  } catch (e) { annoncer(erreurDe(e), true); }
}

async function vueAppariements(params) {
  const etatFiltre = params.get('state') || 'en_attente';
  const filtre = h('select', { onchange: () => { location.hash = '#/appariements?state=' + filtre.value; } },
    Object.entries(ETATS_APPARIEMENT).map(([k, v]) => h('option', { value: k }, v)));
  filtre.value = etatFiltre;
  const l = await api('GET', '/pairings?state=' + encodeURIComponent(etatFiltre));
  const agir = peut('admin', 'support');
  const blocs = l.items.map((p) => {
    const s = h('section', { class: 'carte appariement', 'aria-labelledby': 'a-' + p.id },
      h('h2', { id: 'a-' + p.id }, p.person, ' — ', p.partner, ' ', h('span', { class: 'etat etat-' + (p.state === 'apparie' ? 'delivered' : 'pending') }, ETATS_APPARIEMENT[p.state])),
      h('p', { class: 'discret' }, 'Depuis le ', date(p.created_at), p.waiting.length ? ' — ' + p.waiting.length + ' envoi(s) en attente' : '',
        p.state === 'apparie' ? ' — fiche ' + p.external_id + ' (' + p.how + ', par ' + p.by + ')' : '', p.state === 'defait' ? ' — défait par ' + p.by + ' : ' + p.reason : ''));
    if (p.state !== 'apparie') {
      if (!p.candidates.length) s.append(h('p', {}, 'Aucun candidat trouvé chez le partenaire.'));
      else {
        s.append(h('table', {}, h('caption', { class: 'discret' }, p.candidates.length + ' candidat(s)'),
          h('thead', {}, h('tr', {}, ['Fiche', 'Score', 'Identité', ''].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, p.candidates.map((c) => h('tr', {}, h('td', {}, c.id), h('td', { class: 'nombre' }, Math.round(c.score * 100) + ' %'), h('td', {}, fiche(c.summary)),
            h('td', {}, agir ? h('button', { type: 'button', onclick: () => choisir(p, c.id) }, 'Choisir la fiche ' + c.id) : ''))))));
      }
      if (agir) {
        const autre = h('input', { size: 20 });
        s.append(h('form', { class: 'boutons', onsubmit: (ev) => { ev.preventDefault(); if (autre.value.trim()) choisir(p, autre.value.trim()); } },
          champ('Autre fiche (identifiant chez le partenaire)', autre), h('button', { type: 'submit' }, 'Apparier')));
      }
    } else if (agir) {
      const motif = h('input', { required: true, size: 40 });
      s.append(h('form', { class: 'boutons', onsubmit: async (ev) => {
        ev.preventDefault();
        if (!motif.value.trim()) { annoncer('Un motif est obligatoire pour défaire un appariement.', true); motif.focus(); return; }
        try { await api('POST', '/pairings/' + p.id + '/undo', { reason: motif.value }); annoncer('Appariement défait : les prochains envois de la personne attendront un nouvel appariement.'); route(); } catch (e) { annoncer(erreurDe(e), true); }
      } }, champ('Motif pour défaire', motif), h('button', { type: 'submit', class: 'danger' }, 'Défaire l\'appariement')));
    }
    return s;
  });
  page('Appariements à traiter', h('form', { class: 'filtres' }, champ('État', filtre)),
    l.items.length ? h('div', {}, blocs) : h('p', {}, 'Aucun appariement dans cet état.'),
    peut('admin', 'support') ? '' : h('p', { class: 'discret' }, 'L\'identité des candidats est masquée pour votre rôle.'));
}

// ---------- refus d'une source interrogée ----------
async function vueRefus(source) {
  const l = await api('GET', '/sources/' + encodeURIComponent(source) + '/rejects');
  page('Enregistrements refusés — ' + source, h('table', {},
    h('thead', {}, h('tr', {}, ['Position', 'Statut', 'Erreur', 'Détail', 'Le'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, l.items.map((r) => h('tr', {}, h('td', {}, r.position), h('td', { class: 'nombre' }, r.status), h('td', {}, r.error), h('td', {}, r.detail), h('td', {}, date(r.at)))))));
}

// ---------- mappings ----------
async function vueMappings() {
  const l = await api('GET', '/mappings');
  page('Mappings', h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Nom'), h('th', { scope: 'col' }, 'Version active'))),
    h('tbody', {}, l.items.map((m) => h('tr', {}, h('td', {}, h('a', { href: '#/mapping/' + encodeURIComponent(m.name) }, m.name)), h('td', {}, 'v' + m.active_version))))));
}

function afficheDiff(texte) {
  return h('pre', { class: 'diff', tabindex: 0 }, texte.split('\n').map((l) => h('span', { class: l.startsWith('+') ? 'ajout' : l.startsWith('-') ? 'retrait' : '' }, l + '\n')));
}

async function vueMapping(nom) {
  const m = await api('GET', '/mappings/' + encodeURIComponent(nom));
  const admin = peut('admin');
  const editeur = h('textarea', { rows: 22, spellcheck: 'false', 'aria-describedby': 'diag' }, m.content || '');
  if (!admin) editeur.setAttribute('readonly', '');
  const diag = h('div', { id: 'diag', 'aria-live': 'polite' });
  let minuterie = null;
  const valider = async () => {
    try {
      const r = await api('POST', '/mappings/' + encodeURIComponent(nom) + '/validate', { content: editeur.value });
      diag.replaceChildren(r.valid ? h('span', { class: 'valide' }, '✔ Mapping valide')
        : h('div', { class: 'diagnostics', role: 'alert' }, r.diagnostics.map((d) => 'ligne ' + d.line + ', colonne ' + d.column + ' : ' + d.message).join('\n')));
    } catch (e) { diag.replaceChildren(h('div', { class: 'diagnostics' }, erreurDe(e))); }
  };
  editeur.addEventListener('input', () => { clearTimeout(minuterie); minuterie = setTimeout(valider, 400); });

  // test
  const echantillon = h('textarea', { rows: 8, spellcheck: 'false', placeholder: '{"event": "rdv.planned", …}' });
  const messageId = h('input', { size: 34, placeholder: 'identifiant d\'un message stocké' });
  const resultat = h('pre', { tabindex: 0, 'aria-live': 'polite' }, '');
  const tester = async () => {
    const corps = { content: editeur.value };
    if (messageId.value.trim()) corps.message_id = messageId.value.trim();
    else {
      try { corps.input = JSON.parse(echantillon.value || '{}'); } catch (e) { resultat.textContent = 'Échantillon : JSON invalide (' + e.message + ')'; return; }
    }
    try {
      const r = await api('POST', '/mappings/' + encodeURIComponent(nom) + '/test', corps);
      resultat.textContent = r.result === 'ok' ? 'Résultat : ' + json(r.output) : r.result === 'skip' ? 'Ignoré : ' + r.reason : 'Erreur : ' + r.reason;
    } catch (e) { resultat.textContent = 'Erreur : ' + erreurDe(e) + (e.body && e.body.diagnostics ? '\n' + e.body.diagnostics.map((d) => 'ligne ' + d.line + ' : ' + d.message).join('\n') : ''); }
  };

  // versions, diff, rollback
  const opts = () => m.versions.map((v) => h('option', { value: v.version }, 'v' + v.version + (v.active ? ' (active)' : '')));
  const de = h('select', {}, opts()), a = h('select', {}, opts());
  // By default: the version before the active one, against the active one.
  const avant = m.versions.map((v) => v.version).filter((v) => v < m.active_version);
  de.value = avant.length ? Math.max(...avant) : m.active_version;
  a.value = m.active_version;
  const diff = h('div', {});
  const lignes = m.versions.slice().reverse().map((v) => h('tr', {},
    h('td', {}, 'v' + v.version, v.active ? ' ' : '', v.active ? h('span', { class: 'etat etat-closed' }, 'active') : ''), h('td', {}, date(v.created_at)), h('td', {}, v.author), h('td', {}, v.comment),
    h('td', {}, admin && !v.active ? h('button', { type: 'button', class: 'secondaire', onclick: async () => {
      try {
        await api('POST', '/mappings/' + encodeURIComponent(nom) + '/activate', { version: v.version, comment: 'retour à la v' + v.version + ' depuis la console' });
        annoncer('Version v' + v.version + ' réactivée.'); route();
      } catch (e) { annoncer(erreurDe(e), true); }
    } }, 'Revenir à la v' + v.version) : '')));

  const commentaire = h('input', { size: 50 });
  const contenu = [
    h('p', {}, 'Version active : v', m.active_version),
    h('h2', {}, admin ? 'Modifier' : 'Contenu'),
    editeur, diag,
    h('div', { class: 'boutons' }, h('button', { type: 'button', class: 'secondaire', onclick: valider }, 'Vérifier')),
  ];
  if (admin) {
    contenu.push(h('form', { class: 'filtres', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await api('POST', '/mappings/' + encodeURIComponent(nom) + '/versions', { content: editeur.value, comment: commentaire.value, activate: true });
        annoncer('Version v' + r.version + ' publiée.'); route();
      } catch (e) { annoncer('Publication refusée : ' + erreurDe(e), true); }
    } }, champ('Commentaire de publication', commentaire), h('button', { type: 'submit' }, 'Publier')));
  }
  contenu.push(h('h2', {}, 'Tester'),
    h('div', { class: 'colonnes' }, champ('Échantillon (JSON)', echantillon), champ('ou message stocké', messageId)),
    h('div', { class: 'boutons' }, h('button', { type: 'button', onclick: tester }, 'Tester')), resultat,
    h('h2', {}, 'Versions'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Version', 'Créée le', 'Auteur', 'Commentaire', ''].map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, lignes)),
    h('h2', {}, 'Comparer deux versions'),
    h('div', { class: 'filtres' }, champ('De', de), champ('À', a), h('button', { type: 'button', onclick: async () => {
      try { const r = await api('GET', '/mappings/' + encodeURIComponent(nom) + '/diff?from=' + de.value + '&to=' + a.value); diff.replaceChildren(afficheDiff(r.diff || '(aucune différence)')); } catch (e) { annoncer(erreurDe(e), true); }
    } }, 'Comparer')), diff);
  page('Mapping ' + nom, ...contenu);
}

// ---------- tables ----------
async function vueTables() {
  const l = await api('GET', '/tables');
  page('Tables de correspondance', h('table', {}, h('thead', {}, h('tr', {}, ['Nom', 'Version', 'Format'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, l.items.map((t) => h('tr', {}, h('td', {}, h('a', { href: '#/table/' + encodeURIComponent(t.name) }, t.name)), h('td', {}, 'v' + t.version), h('td', {}, t.format))))));
}

async function vueTable(nom) {
  const t = await api('GET', '/tables/' + encodeURIComponent(nom));
  const admin = peut('admin');
  const zone = h('textarea', { rows: 18, spellcheck: 'false' }, t.content);
  if (!admin) zone.setAttribute('readonly', '');
  const fichier = h('input', { type: 'file', accept: '.csv,text/csv' });
  fichier.addEventListener('change', () => {
    const f = fichier.files[0];
    if (!f) return;
    const r = new FileReader();
    r.onload = () => { zone.value = r.result; annoncer('Fichier « ' + f.name + ' » chargé : vérifier puis enregistrer.'); };
    r.readAsText(f, 'utf-8');
  });
  const commentaire = h('input', { size: 50 });
  const contenu = [h('p', {}, 'Version v', t.version, ' — format ', t.format), zone];
  if (admin) {
    contenu.push(champ('Importer un fichier CSV', fichier), h('form', { class: 'filtres', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await api('POST', '/tables/' + encodeURIComponent(nom) + '/versions', { format: t.format, content: zone.value, comment: commentaire.value });
        annoncer('Table enregistrée (v' + r.version + ').'); route();
      } catch (e) { annoncer('Refusé : ' + erreurDe(e), true); }
    } }, champ('Commentaire', commentaire), h('button', { type: 'submit' }, 'Enregistrer et activer')));
  }
  page('Table ' + nom, ...contenu);
}

// ---------- connecteurs ----------
async function vueConnecteurs() {
  const l = await api('GET', '/destinations');
  page('Connecteurs', ...l.items.map((d) => {
    const res = h('p', { 'aria-live': 'polite' });
    return h('section', { class: 'carte' }, h('h2', {}, d.name, ' ', h('span', { class: 'discret' }, '(' + d.connector + ')')),
      h('p', {}, 'Concurrence ', d.concurrency, ' — en cas de blocage : ', d.on_dead === 'hold' ? 'retenir les suivants du même objet' : 'laisser passer les suivants',
        ' — essais : ', d.retry.max_attempts || 'sans limite'),
      h('pre', { tabindex: 0 }, json(d.settings)),
      h('button', { type: 'button', onclick: async () => {
        res.textContent = 'Test en cours…';
        try {
          const r = await api('POST', '/destinations/' + encodeURIComponent(d.name) + '/probe', {});
          res.replaceChildren(r.ok ? h('span', { class: 'valide' }, '✔ Connexion réussie (' + r.duration_ms + ' ms)') : h('span', { class: 'diagnostics' }, '✘ ' + r.error + ' : ' + (r.detail || '')));
        } catch (e) { res.textContent = erreurDe(e); }
      } }, 'Tester la connexion'), res);
  }));
}

// ---------- utilisateurs et jetons ----------
async function vueUtilisateurs() {
  const [u, t] = await Promise.all([api('GET', '/users'), api('GET', '/tokens')]);
  const nom = h('input', { autocomplete: 'off', required: true });
  const role = h('select', {}, ['support', 'admin', 'auditor'].map((r) => h('option', { value: r }, r)));
  const pw = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 12 });
  const tnom = h('input', { required: true });
  const trole = h('select', {}, ['system', 'support', 'admin', 'auditor'].map((r) => h('option', { value: r }, r)));
  const tsources = h('input', { placeholder: 'cms76, portail (vide = toutes)' });
  const secret = h('div', { 'aria-live': 'polite' });
  page('Utilisateurs et jetons',
    h('h2', {}, 'Utilisateurs'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Nom', 'Rôle', 'État', 'Créé le', 'par', ''].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, u.items.map((x) => h('tr', {}, h('td', {}, x.name), h('td', {}, x.role), h('td', {}, x.disabled ? 'désactivé' : 'actif'), h('td', {}, date(x.created_at)), h('td', {}, x.created_by),
        h('td', {}, h('button', { type: 'button', class: 'secondaire', onclick: async () => {
          try { await api('PATCH', '/users/' + encodeURIComponent(x.name), { disabled: !x.disabled }); route(); } catch (e) { annoncer(erreurDe(e), true); }
        } }, x.disabled ? 'Réactiver' : 'Désactiver')))))),
    h('form', { class: 'filtres', onsubmit: async (ev) => {
      ev.preventDefault();
      try { await api('POST', '/users', { name: nom.value, role: role.value, password: pw.value }); annoncer('Utilisateur créé.'); route(); } catch (e) { annoncer(erreurDe(e), true); }
    } }, champ('Nom', nom), champ('Rôle', role), champ('Mot de passe (12 caractères au moins)', pw), h('button', { type: 'submit' }, 'Créer l\'utilisateur')),
    h('h2', {}, 'Jetons d\'API'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Nom', 'Rôle', 'Sources', 'Origine', 'État', ''].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, t.items.map((x) => h('tr', {}, h('td', {}, x.name), h('td', {}, x.role), h('td', {}, (x.sources || []).join(', ') || 'toutes'), h('td', {}, x.origin === 'configuration' ? 'configuration' : 'console'),
        h('td', {}, x.revoked ? 'révoqué' : 'valide'),
        h('td', {}, x.origin === 'console' && !x.revoked ? h('button', { type: 'button', class: 'danger', onclick: async () => {
          try { await api('DELETE', '/tokens/' + encodeURIComponent(x.name)); route(); } catch (e) { annoncer(erreurDe(e), true); }
        } }, 'Révoquer') : ''))))),
    h('form', { class: 'filtres', onsubmit: async (ev) => {
      ev.preventDefault();
      const sources = tsources.value.split(',').map((s) => s.trim()).filter(Boolean);
      try {
        const r = await api('POST', '/tokens', { name: tnom.value, role: trole.value, sources });
        secret.replaceChildren(h('p', {}, 'Jeton créé ; copiez-le maintenant, il ne sera plus affiché :'), h('p', { class: 'secret' }, r.token));
      } catch (e) { annoncer(erreurDe(e), true); }
    } }, champ('Nom', tnom), champ('Rôle', trole), champ('Sources autorisées', tsources), h('button', { type: 'submit' }, 'Créer le jeton')),
    secret);
}

// ---------- journal d'audit ----------
async function vueJournal(params) {
  const champs = { actor: h('input', { value: params.get('actor') || '' }), action: h('input', { value: params.get('action') || '', placeholder: 'delivery.retry, mapping.…' }),
    object: h('input', { value: params.get('object') || '' }), from: h('input', { type: 'date', value: params.get('from') || '' }), to: h('input', { type: 'date', value: params.get('to') || '' }) };
  const p = new URLSearchParams();
  for (const [k, el] of Object.entries(champs)) if (el.value) p.set(k, el.value);
  const l = await api('GET', '/audit?' + params.toString());
  page('Journal d\'audit',
    h('form', { class: 'filtres', onsubmit: (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const [k, el] of Object.entries(champs)) if (el.value) q.set(k, el.value);
      location.hash = '#/journal?' + q.toString();
    } }, champ('Qui', champs.actor), champ('Action', champs.action), champ('Objet', champs.object), champ('Du', champs.from), champ('Au', champs.to),
      h('button', { type: 'submit' }, 'Filtrer'), h('a', { class: 'bouton secondaire', href: '/api/v1/audit.csv?' + p.toString(), download: 'relais-audit.csv' }, 'Exporter en CSV')),
    h('table', {}, h('thead', {}, h('tr', {}, ['Quand', 'Qui', 'Rôle', 'Action', 'Objet', 'Détail', 'Adresse'].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, l.items.map((e) => h('tr', {}, h('td', {}, date(e.at)), h('td', {}, e.actor), h('td', {}, e.role), h('td', {}, e.action), h('td', {}, e.object), h('td', {}, e.detail), h('td', {}, e.address))))));
}

// ---------- routeur ----------
async function route() {
  const hash = location.hash || '#/';
  if (!etat.moi && hash !== '#/connexion') {
    try {
      const s = await api('GET', '/session');
      etat.moi = { user: s.user, role: s.role };
      etat.csrf = s.csrf || '';
    } catch (e) { return; }
  }
  if (hash === '#/connexion') return vueConnexion();
  const menu = document.getElementById('menu');
  menu.hidden = false;
  for (const a of menu.querySelectorAll('a')) {
    a.hidden = !a.dataset.roles.split(' ').includes(etat.moi.role);
    const cible = a.getAttribute('href');
    const courant = cible === '#/' ? hash === '#/' : hash.startsWith(cible);
    if (courant) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.getElementById('moi').textContent = etat.moi.user + ' (' + etat.moi.role + ')';
  document.getElementById('deconnexion').hidden = false;
  const chemin = hash.slice(1).split('?')[0];
  const params = paramsDe(hash);
  const seg = chemin.split('/').filter(Boolean).map(decodeURIComponent);
  try {
    if (seg.length === 0) await vueTableau();
    else if (seg[0] === 'echecs') await vueEchecs(params);
    else if (seg[0] === 'livraison') await vueLivraison(seg[1]);
    else if (seg[0] === 'appariements') await vueAppariements(params);
    else if (seg[0] === 'refus') await vueRefus(seg[1]);
    else if (seg[0] === 'mappings') await vueMappings();
    else if (seg[0] === 'mapping') await vueMapping(seg[1]);
    else if (seg[0] === 'tables') await vueTables();
    else if (seg[0] === 'table') await vueTable(seg[1]);
    else if (seg[0] === 'connecteurs') await vueConnecteurs();
    else if (seg[0] === 'utilisateurs') await vueUtilisateurs();
    else if (seg[0] === 'journal') await vueJournal(params);
    else page('Page inconnue', h('p', {}, h('a', { href: '#/' }, 'Retour au tableau de bord')));
  } catch (e) {
    if (e.status === 401) return;
    page('Erreur', h('p', { class: 'diagnostics', role: 'alert' }, erreurDe(e)));
  }
}

window.addEventListener('hashchange', () => { annoncer(''); route().then(() => document.getElementById('contenu').focus({ preventScroll: true })); });
document.getElementById('deconnexion').addEventListener('click', async () => {
  try { await api('DELETE', '/session'); } catch (e) { /* already logged out */ }
  etat.moi = null; etat.csrf = '';
  location.hash = '#/connexion';
});
route();
