// libmm: the library behind mm-tokenize, mm-train, mm-sample and mm-eval.
#ifndef MM_H
#define MM_H

// The version of the library and the tools (mm-tokenize --version).
#define MM_VERSION "0.1"

#include "err.h"
#include "bytes.h"
#include "checksum.h"
#include "rng.h"
#include "fileio.h"
#include "doc.h"
#include "shard.h"
#include "image.h"
#include "tokenizer.h"
#include "batch.h"
#include "model.h"
#include "ckpt.h"
#include "loader.h"
#include "optim.h"
#include "train.h"
#include "ingest.h"
#include "kv.h"
#include "sample.h"
#include "eval.h"

#endif
