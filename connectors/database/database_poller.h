#pragma once
// The `database` polling source: a table or view of another application's database (CMS76's
// demands) read by a configured SELECT, PostgreSQL, MySQL/MariaDB or SQLite.
//
// Two modes. `watermark`: the query returns the rows whose watermark tuple (e.g.
// (date_modification, id)) is strictly greater than the last one read, in that order; the
// checkpoint is the last row's tuple, so rows with equal timestamps are never skipped nor read
// twice. `outbox`: the query returns the rows not yet done of an outbox table; after the hub
// committed their messages, `mark_done` marks them; a row found again at or below the checkpoint
// (relais died between its commit and mark_done) is only marked done, never a second message.
//
// Each row becomes one message: the JSON text of `body_column`, or an object of the row's
// columns (a dotted name nests). See docs/connectors/cms76.md.

#include "core/poller.h"

namespace relais {

const ConfigSpec& database_poller_spec();
void register_database_poller(PollerRegistry& registry);

}  // namespace relais
