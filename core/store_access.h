#pragma once
// How a process opens the store file.
//   ReadWrite: the server, and a command that writes while no server holds the store (see
//              core/store_lock.h): migrations applied, WAL checkpointed at close.
//   ReadOnly:  a command that only reads, even while relais runs: SQLite `mode=ro`, no
//              migration (a schema other than this build's is refused with a readable
//              message), no checkpoint, every write fails.

namespace relais {

enum class StoreAccess { ReadWrite, ReadOnly };

}  // namespace relais
