// Reference Conv and ConvTranspose loops (see conv_ref.h).
#include "kernels/conv_ref.h"

#include <omp.h>

#include <algorithm>
#include <vector>

namespace hearth {

template <typename T>
void conv_ref(const ConvShape& s, const T* x, const T* w, const T* b, T* y, int threads) {
  const Window3& g = s.w;
  const int64_t icg = s.c_in / s.group, ocg = s.c_out / s.group;
  const int64_t in_sp = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_sp = g.out[0] * g.out[1] * g.out[2];
  const int64_t k_sp = g.k[0] * g.k[1] * g.k[2];
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t nc = 0; nc < s.n * s.c_out; ++nc) {
    const int64_t n = nc / s.c_out, oc = nc % s.c_out, grp = oc / ocg;
    const T* xg = x + (n * s.c_in + grp * icg) * in_sp;
    const T* wo = w + oc * icg * k_sp;
    T* yo = y + nc * out_sp;
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          double acc = b ? static_cast<double>(b[oc]) : 0.0;
          for (int64_t ic = 0; ic < icg; ++ic)
            for (int64_t kd = 0; kd < g.k[0]; ++kd) {
              const int64_t id = od * g.s[0] - g.pb[0] + kd * g.d[0];
              if (id < 0 || id >= g.in[0]) continue;
              for (int64_t kh = 0; kh < g.k[1]; ++kh) {
                const int64_t ih = oh * g.s[1] - g.pb[1] + kh * g.d[1];
                if (ih < 0 || ih >= g.in[1]) continue;
                for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                  const int64_t iw = ow * g.s[2] - g.pb[2] + kw * g.d[2];
                  if (iw < 0 || iw >= g.in[2]) continue;
                  const double xv = static_cast<double>(xg[(ic * g.in[0] + id) * g.in[1] * g.in[2] + ih * g.in[2] + iw]);
                  const double wv = static_cast<double>(wo[((ic * g.k[0] + kd) * g.k[1] + kh) * g.k[2] + kw]);
                  acc += xv * wv;
                }
              }
            }
          yo[(od * g.out[1] + oh) * g.out[2] + ow] = static_cast<T>(acc);
        }
  }
}

template <typename T>
void conv_transpose_ref(const ConvShape& s, const T* x, const T* w, const T* b, T* y, int threads) {
  const Window3& g = s.w;
  const int64_t icg = s.c_in / s.group, ocg = s.c_out / s.group;
  const int64_t in_sp = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_sp = g.out[0] * g.out[1] * g.out[2];
  const int64_t k_sp = g.k[0] * g.k[1] * g.k[2];
  // One output channel per iteration: the scatter never crosses iterations. Each
  // thread's accumulator is allocated here: an allocation failure inside the
  // parallel region could not be caught.
  std::vector<double> accs(static_cast<size_t>(std::max(threads, 1)) * static_cast<size_t>(out_sp));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t nc = 0; nc < s.n * s.c_out; ++nc) {
    const int64_t n = nc / s.c_out, oc = nc % s.c_out, grp = oc / ocg, oc_in_g = oc % ocg;
    double* acc = accs.data() + static_cast<size_t>(omp_get_thread_num()) * static_cast<size_t>(out_sp);
    std::fill(acc, acc + out_sp, b ? static_cast<double>(b[oc]) : 0.0);
    for (int64_t ic = 0; ic < icg; ++ic) {
      const T* xc = x + (n * s.c_in + grp * icg + ic) * in_sp;
      const T* wc = w + ((grp * icg + ic) * ocg + oc_in_g) * k_sp;
      for (int64_t id = 0; id < g.in[0]; ++id)
        for (int64_t ih = 0; ih < g.in[1]; ++ih)
          for (int64_t iw = 0; iw < g.in[2]; ++iw) {
            const double xv = static_cast<double>(xc[(id * g.in[1] + ih) * g.in[2] + iw]);
            for (int64_t kd = 0; kd < g.k[0]; ++kd) {
              const int64_t od = id * g.s[0] - g.pb[0] + kd * g.d[0];
              if (od < 0 || od >= g.out[0]) continue;
              for (int64_t kh = 0; kh < g.k[1]; ++kh) {
                const int64_t oh = ih * g.s[1] - g.pb[1] + kh * g.d[1];
                if (oh < 0 || oh >= g.out[1]) continue;
                for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                  const int64_t ow = iw * g.s[2] - g.pb[2] + kw * g.d[2];
                  if (ow < 0 || ow >= g.out[2]) continue;
                  acc[(od * g.out[1] + oh) * g.out[2] + ow] +=
                      xv * static_cast<double>(wc[(kd * g.k[1] + kh) * g.k[2] + kw]);
                }
              }
            }
          }
    }
    T* yo = y + nc * out_sp;
    for (int64_t i = 0; i < out_sp; ++i) yo[i] = static_cast<T>(acc[i]);
  }
}

template void conv_ref<float>(const ConvShape&, const float*, const float*, const float*, float*, int);
template void conv_ref<double>(const ConvShape&, const double*, const double*, const double*, double*, int);
template void conv_transpose_ref<float>(const ConvShape&, const float*, const float*, const float*, float*, int);
template void conv_transpose_ref<double>(const ConvShape&, const double*, const double*, const double*, double*,
                                         int);

}  // namespace hearth
