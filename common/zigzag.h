// The zigzag (load-balanced) split of a prompt over W shards, in one place
// for the coordinator that plans it and the workers that run it: 2W pieces
// in order of position, shard r holding pieces W-1-r (its early piece) and
// W+r (its late piece), so every shard does the same causal attention work
// and the last shard holds the prompt's start and end.
#pragma once

namespace tessera {

// The shard that holds piece `piece` (0 <= piece < 2·shards).
inline int ZigzagRank(int piece, int shards) { return piece < shards ? shards - 1 - piece : piece - shards; }

}  // namespace tessera
