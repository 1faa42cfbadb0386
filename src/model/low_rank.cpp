#include "model/low_rank.h"

#include <Eigen/Dense>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <string>

#include "util/error.h"

namespace colony {
namespace {

using Matrix = Eigen::MatrixXd;
using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Splitmix64 and Box-Muller: a Gaussian sketch that is the same on every
// platform (std::normal_distribution is implementation-defined).
Matrix gaussian(int64_t rows, int64_t cols, uint64_t seed) {
    Matrix m(rows, cols);
    uint64_t s = seed;
    auto next = [&s] {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
    };
    for (int64_t j = 0; j < cols; ++j) {
        for (int64_t i = 0; i < rows; ++i) {
            const double u1 = std::max(next(), 1e-300), u2 = next();
            m(i, j) = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
        }
    }
    return m;
}

// An orthonormal basis of y's columns (thin Householder QR).
Matrix orthonormal(const Matrix &y) {
    Eigen::HouseholderQR<Matrix> qr(y);
    return qr.householderQ() * Matrix::Identity(y.rows(), y.cols());
}

struct Svd {
    Matrix u;           // n_out x k
    Eigen::VectorXd s;  // k, descending
    Matrix v;           // n_in x k
};

Svd exact_svd(const Eigen::Ref<const RowMajor> &w) {
    Eigen::BDCSVD<Matrix> svd(w, Eigen::ComputeThinU | Eigen::ComputeThinV);
    return {svd.matrixU(), svd.singularValues(), svd.matrixV()};
}

// Halko et al. 2011: Q spans W's dominant range (algorithm 4.4), and the SVD of
// the small Q^T W gives W's leading singular triplets (algorithm 5.1).
Svd randomized_svd(const Eigen::Ref<const RowMajor> &w, int64_t rank, uint64_t seed,
                   int power_iterations) {
    const int64_t l = std::min<int64_t>(rank + 10, std::min(w.rows(), w.cols()));
    Matrix q = orthonormal(w * gaussian(w.cols(), l, seed));
    for (int i = 0; i < power_iterations; ++i) {
        const Matrix z = orthonormal(w.transpose() * q);
        q = orthonormal(w * z);
    }
    const Matrix small = q.transpose() * w;  // l x n_in
    Eigen::BDCSVD<Matrix> svd(small, Eigen::ComputeThinU | Eigen::ComputeThinV);
    return {q * svd.matrixU(), svd.singularValues(), svd.matrixV()};
}

}  // namespace

LowRankFactors factorize_low_rank(const float *w, int64_t n_in, int64_t n_out, int64_t rank,
                                  uint64_t seed, int power_iterations, int64_t exact_limit,
                                  const float *input_scale) {
    const int64_t full = std::min(n_in, n_out);
    if (n_in <= 0 || n_out <= 0 || rank < 1 || rank > full) {
        throw Error(ErrorCode::kInvalidArgument, "rank " + std::to_string(rank) +
                                                     " is outside [1, " + std::to_string(full) +
                                                     "] for a " + std::to_string(n_out) + " x " +
                                                     std::to_string(n_in) + " matrix");
    }
    // double precision: a full-rank product B A then gives W back to float
    // rounding (in float the SVD's own error reaches 1e-4 of the logits)
    RowMajor m = Eigen::Map<const RowMajorF>(w, n_out, n_in).cast<double>();
    Eigen::VectorXd scale;
    if (input_scale) {
        scale = Eigen::Map<const Eigen::VectorXf>(input_scale, n_in).cast<double>();
        m = m * scale.asDiagonal();
    }
    const Svd svd =
        full <= exact_limit ? exact_svd(m) : randomized_svd(m, rank, seed, power_iterations);
    LowRankFactors f;
    f.rank = rank;
    const Eigen::VectorXd root = svd.s.head(rank).cwiseSqrt();
    RowMajor a_scaled = root.asDiagonal() * svd.v.leftCols(rank).transpose();  // rank x n_in
    if (input_scale)
        a_scaled = a_scaled * scale.cwiseInverse().asDiagonal();
    const RowMajorF a = a_scaled.cast<float>();
    const RowMajorF b = (svd.u.leftCols(rank) * root.asDiagonal()).cast<float>();
    f.a.assign(a.data(), a.data() + a.size());
    f.b.assign(b.data(), b.data() + b.size());
    // ||W - B A||^2 = ||W||^2 - sum of the kept s_i^2: the residual is
    // orthogonal to the kept part (both for the exact SVD and for Q Q^T W).
    const double total = m.squaredNorm();
    const double kept = svd.s.head(rank).squaredNorm();
    f.rel_error = total > 0 ? std::sqrt(std::max(0.0, total - kept) / total) : 0.0;
    return f;
}

}  // namespace colony
