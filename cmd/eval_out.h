// mm-eval's output: the figures of one run as a table for a terminal or one JSON object.
#ifndef MM_EVAL_OUT_H
#define MM_EVAL_OUT_H

#include <stdio.h>

#include "eval.h"

struct eval_report {
	const char *model;   // as given
	uint64_t docs;
	long long seed, threads, batch;
	const char *weights; // weights of bpd, classes and t2i: "weights" or "ema"
	int nloss;           // 0, 1 or 2 (weights, then ema)
	const char *loss_name[2];
	mm_eval_losses loss[2];
	int has_bpd, bpd_auto;
	mm_eval_bpd bpd;
	const mm_eval_classes *classes; // NULL: no classes
	int has_cls;
	double read_t;                  // noise level of the classified images (--read-t)
	double read_level;              // read_t after the model's noise shift (mm_read_level)
	int read_draws;                 // reads of each classified image, scores averaged
	mm_eval_cls cls;
	int has_t2i;
	mm_eval_t2i t2i;
	const char *sampler;
	int steps;
	double cfg, cfg_lo, cfg_hi; // guidance and its interval of noise levels
	const char *captions_file; // --captions: caption retrieval
	int has_ret;
	mm_eval_ret ret;
	const char *t2i_file;      // --t2i: text-to-image retrieval
	int has_nn;
	mm_eval_nn nn;
};

void eval_print_table(FILE *f, const struct eval_report *r);
void eval_print_json(FILE *f, const struct eval_report *r);
// Writes DIR/NN-caption.png for each class: its per_class images (patch order) in a grid of
// ceil(sqrt(per_class)) columns, 2 white pixels apart. Dies on failure.
void eval_write_grids(const char *dir, const mm_eval_classes *c, const mm_config *cfg, const uint8_t *images,
		      int per_class);

// Writes a PNG of rows [own reference image | generated images | nearest reference image] for
// the first `rows` captions of the --t2i list, each labelled with its caption. Dies on failure.
void eval_write_compare(const char *path, const mm_eval_classes *c, const mm_config *cfg, const mm_eval_nn *nn,
			const uint8_t *images, int rows, int scale);

#endif
