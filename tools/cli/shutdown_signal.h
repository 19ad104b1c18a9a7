// Clean shutdown on Ctrl-C / SIGTERM for server commands: block the signals
// in every thread (call first, before any thread starts), then wait for one
// on the main thread and shut the servers down in order.
#pragma once

namespace tessera {

// Blocks SIGINT and SIGTERM for this thread and the threads it creates later.
void BlockShutdownSignals();

// Waits until SIGINT or SIGTERM arrives; returns the signal number.
int WaitForShutdownSignal();

}  // namespace tessera
