/* One token through a GPT-2-shaped model: batch 1, float32, the KV cache (gptviz.model.native_decode).

   Why C: a batch-1 step reads every weight once, so its floor is that read. Through PyTorch the 49
   matrix-vector products of a 124M step read at MKL's matrix-matrix rate (a one-row product runs on one
   core, so gptviz sends two rows: few_rows.py), and some 400 small operations and their Python calls add
   ~6 ms to a step of ~20 ms. Here each product reads its rows on both cores at the rate of a plain sum over
   the same bytes, and the small operations (norms, attention over the cache, GELU, residual adds) cost
   microseconds. The arithmetic is the model's own (gptviz/model/gpt.py), in float32, summed in another
   order: values agree with the PyTorch path to float32 rounding, not bit for bit.

   It can also copy out what the panes tap at the new position (the TAP_* table) and stop before the
   output head, so that the caller puts the logit lens's rows through the head with the token's own.

   The caller (Python, through ctypes) passes every tensor as a pointer in a flat table, laid out as the
   P_* and L_* indices below say, and the sizes as a table of int64 (the D_* indices). Nothing is allocated
   here: `scratch` holds D_SCRATCH floats (native_decode.scratch_floats). */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Sizes, in the int64 table `dims`. */
enum { D_LAYERS, D_EMB, D_HEADS, D_CONTEXT, D_VOCAB, D_THREADS, D_COUNT };

/* The model's tensors, in the pointer table: the globals, then L_COUNT pointers per layer. */
enum { P_TOK_EMB, P_POS_EMB, P_FINAL_SCALE, P_FINAL_SHIFT, P_HEAD, P_GLOBALS };
enum {
    L_NORM1_SCALE, L_NORM1_SHIFT, L_QKV, L_QKV_BIAS, /* (3D, D), (3D) or NULL */
    L_PROJ, L_PROJ_BIAS,                             /* (D, D), (D) */
    L_NORM2_SCALE, L_NORM2_SHIFT, L_FC1, L_FC1_BIAS, /* (4D, D), (4D) */
    L_FC2, L_FC2_BIAS,                               /* (D, 4D), (D) */
    L_KEYS, L_VALUES,                                /* the cache: (H, context, head_dim), written at pos */
    L_COUNT
};

/* What a step can copy out for the panes (the hook points of gpt.py, one position): the table `taps` holds
   TAP_GLOBALS pointers, then TAP_COUNT per layer; a NULL entry is not copied. */
enum { TAP_EMBED, TAP_GLOBALS };                            /* (D) token + position embedding */
enum {
    TAP_Q, TAP_K, TAP_V,                                    /* (D) each: (H, hd) */
    TAP_LN1, TAP_RESID_MID, TAP_LN2,                        /* (D) */
    TAP_MLP_POST,                                           /* (4D) after GELU */
    TAP_RESID_POST,                                         /* (D) */
    TAP_COUNT
};

#define LAYER_NORM_EPS 1e-5f /* gpt.py LayerNorm */

static void copy_out(float *to, const float *from, int64_t n) {
    if (to)
        for (int64_t i = 0; i < n; ++i) to[i] = from[i];
}

/* w (n,) . x (n,) with 32 independent partial sums (four vector registers of eight), so the adds overlap:
   one running sum would wait on each add and read a weight row at a fraction of the memory's rate. */
static float dot(const float *restrict w, const float *restrict x, int64_t n) {
    float acc[32] = {0};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 32; ++k) acc[k] += w[i + k] * x[i + k];
    float s = 0.0f;
    for (int k = 0; k < 32; ++k) s += acc[k];
    for (; i < n; ++i) s += w[i] * x[i];
    return s;
}

static float gelu(float x) { /* gpt.py GELU: the tanh approximation GPT-2 was trained with */
    const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

/* y (out,) = W (out, in) x (+ bias), GELU'd when asked. Each thread takes one contiguous block of rows, so
   each core streams its own half of the matrix. */
static void matvec(const float *restrict W, const float *bias, const float *restrict x, float *restrict y,
                   int64_t out, int64_t in, int threads, int apply_gelu) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t o = 0; o < out; ++o) {
        float s = dot(W + o * in, x, in);
        if (bias) s += bias[o];
        y[o] = apply_gelu ? gelu(s) : s;
    }
}

/* out = (x - mean) / sqrt(var + eps) * scale + shift, biased variance; sums in double. */
static void layer_norm(const float *x, const float *scale, const float *shift, float *out, int64_t n) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += x[i];
    const double mean = sum / (double)n;
    double sq = 0.0;
    for (int64_t i = 0; i < n; ++i) sq += ((double)x[i] - mean) * ((double)x[i] - mean);
    const float inv = (float)(1.0 / sqrt(sq / (double)n + (double)LAYER_NORM_EPS));
    const float m = (float)mean;
    for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - m) * inv * scale[i] + shift[i];
}

/* One query row against the cache of every head: context (H * hd,) from q (H * hd,) and keys/values
   (H, context, hd) over positions 0..pos. `scores` holds H * context floats. */
static void attend(const float *q, const float *keys, const float *values, float *context, float *scores,
                   int64_t heads, int64_t head_dim, int64_t ctx, int64_t pos, int threads) {
    const float scale = 1.0f / sqrtf((float)head_dim);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t h = 0; h < heads; ++h) {
        const float *qh = q + h * head_dim;
        const float *kh = keys + h * ctx * head_dim;
        const float *vh = values + h * ctx * head_dim;
        float *s = scores + h * ctx;
        float top = -INFINITY;
        for (int64_t j = 0; j <= pos; ++j) {
            s[j] = dot(kh + j * head_dim, qh, head_dim) * scale;
            if (s[j] > top) top = s[j];
        }
        float total = 0.0f;
        for (int64_t j = 0; j <= pos; ++j) {
            s[j] = expf(s[j] - top);
            total += s[j];
        }
        const float inv = 1.0f / total;
        float *out = context + h * head_dim;
        for (int64_t i = 0; i < head_dim; ++i) out[i] = 0.0f;
        for (int64_t j = 0; j <= pos; ++j) {
            const float w = s[j] * inv;
            const float *v = vh + j * head_dim;
            for (int64_t i = 0; i < head_dim; ++i) out[i] += w * v[i];
        }
    }
}

int64_t gptviz_scratch_floats(const int64_t *dims) {
    const int64_t d = dims[D_EMB];
    /* x, normed, qkv (3D), context, hidden (4D), scores (H * context) */
    return d + d + 3 * d + d + 4 * d + dims[D_HEADS] * dims[D_CONTEXT];
}

/* Feed `token` at position `pos` (0-based within the cache's window; pos < context) and write its keys and
   values into the cache at `pos`. Then: the next token's logits (V,) into `logits` (NULL: no final norm and
   head), the residual stream after the last block (D,) into `hidden` (NULL: not kept), and what `taps` asks
   for (NULL: nothing). Returns 0, or -1 when an argument is out of range (nothing written then). */
int gptviz_decode_step(const float *const *p, const int64_t *dims, int64_t token, int64_t pos, float *logits,
                       float *hidden_out, float *const *taps, float *scratch) {
    const int64_t n_layers = dims[D_LAYERS], d = dims[D_EMB], heads = dims[D_HEADS];
    const int64_t ctx = dims[D_CONTEXT], vocab = dims[D_VOCAB];
    const int threads = (int)(dims[D_THREADS] > 0 ? dims[D_THREADS] : 1);
    if (token < 0 || token >= vocab || pos < 0 || pos >= ctx || d % heads != 0) return -1;
    const int64_t head_dim = d / heads;

    float *x = scratch;             /* (D) the residual stream */
    float *normed = x + d;          /* (D) */
    float *qkv = normed + d;        /* (3D): q, k, v, each (H, hd) */
    float *context = qkv + 3 * d;   /* (D) */
    float *hidden = context + d;    /* (4D) the feed-forward's inner width; also the (D) attention output */
    float *scores = hidden + 4 * d; /* (H, context) */

    const float *tok = p[P_TOK_EMB] + token * d;
    const float *where = p[P_POS_EMB] + pos * d;
    for (int64_t i = 0; i < d; ++i) x[i] = tok[i] + where[i];
    if (taps) copy_out(taps[TAP_EMBED], x, d);

    for (int64_t layer = 0; layer < n_layers; ++layer) {
        const float *const *L = p + P_GLOBALS + layer * L_COUNT;
        float *const *T = taps ? taps + TAP_GLOBALS + layer * TAP_COUNT : NULL;
        float *keys = (float *)L[L_KEYS];
        float *values = (float *)L[L_VALUES];

        layer_norm(x, L[L_NORM1_SCALE], L[L_NORM1_SHIFT], normed, d);
        if (T) copy_out(T[TAP_LN1], normed, d);
        matvec(L[L_QKV], L[L_QKV_BIAS], normed, qkv, 3 * d, d, threads, 0);
        if (T) {
            copy_out(T[TAP_Q], qkv, d);
            copy_out(T[TAP_K], qkv + d, d);
            copy_out(T[TAP_V], qkv + 2 * d, d);
        }
        for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < head_dim; ++i) {
                keys[(h * ctx + pos) * head_dim + i] = qkv[d + h * head_dim + i];
                values[(h * ctx + pos) * head_dim + i] = qkv[2 * d + h * head_dim + i];
            }
        attend(qkv, keys, values, context, scores, heads, head_dim, ctx, pos, threads);
        matvec(L[L_PROJ], L[L_PROJ_BIAS], context, hidden, d, d, threads, 0);
        for (int64_t i = 0; i < d; ++i) x[i] += hidden[i];
        if (T) copy_out(T[TAP_RESID_MID], x, d);

        layer_norm(x, L[L_NORM2_SCALE], L[L_NORM2_SHIFT], normed, d);
        if (T) copy_out(T[TAP_LN2], normed, d);
        matvec(L[L_FC1], L[L_FC1_BIAS], normed, hidden, 4 * d, d, threads, 1);
        if (T) copy_out(T[TAP_MLP_POST], hidden, 4 * d);
        matvec(L[L_FC2], L[L_FC2_BIAS], hidden, context, d, 4 * d, threads, 0);
        for (int64_t i = 0; i < d; ++i) x[i] += context[i];
        if (T) copy_out(T[TAP_RESID_POST], x, d);
    }
    copy_out(hidden_out, x, d);
    if (logits) {
        layer_norm(x, p[P_FINAL_SCALE], p[P_FINAL_SHIFT], normed, d);
        matvec(p[P_HEAD], NULL, normed, logits, vocab, d, threads, 0);
    }
    return 0;
}
