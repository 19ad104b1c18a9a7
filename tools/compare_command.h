// `tessera compare`: one seeded random prompt through two local clusters in
// turn (baseline, then candidate, e.g. 1 worker vs 2) and the difference
// between what a client receives from each. Needs no reference file, so it
// works on models too large for a Hugging Face run (random 8B-shaped ones) and
// at prompt lengths no fixture covers (64K tokens split over GPUs).
//
// Exit status: 0 when prompt and decode logits agree within --tolerance
// (relative L2 against the baseline) and the greedy tokens are identical
// (unless --greedy report); 1 when they do not; 2 on a usage or runtime error.
#pragma once

namespace tessera {

int RunCompareCommand(int argc, char** argv);

}  // namespace tessera
