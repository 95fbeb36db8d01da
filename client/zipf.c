/* blkcache-bench: Zipf-distributed item numbers.  See zipf.h. */
#include <config.h>

#include <errno.h>
#include <math.h>

#include "zipf.h"

/* A prime above every N: multiplying by it modulo N permutes [0, N). */
#define SCATTER UINT64_C (4294967311)

int
zipf_init (struct zipf *z, uint64_t n, double theta)
{
  if (n == 0 || n >= SCATTER || !(theta > 0 && theta < 1))
    return -EINVAL;
  z->n = n;
  z->theta = theta;
  z->alpha = 1 / (1 - theta);
  z->zetan = 0;
  for (uint64_t i = 1; i <= n; i++)
    z->zetan += pow ((double)i, -theta);
  z->zeta2 = 1 + pow (0.5, theta);
  z->eta = (1 - pow (2.0 / n, 1 - theta)) / (1 - z->zeta2 / z->zetan);
  return 0;
}

static uint64_t
rank (const struct zipf *z, double u)
{
  double uz = u * z->zetan;
  uint64_t r;

  if (uz < 1 || z->n == 1)
    return 0;
  if (uz < z->zeta2)
    return 1;
  r = z->n * pow (z->eta * u - z->eta + 1, z->alpha);
  return r < z->n ? r : z->n - 1;
}

uint64_t
zipf_next (const struct zipf *z, struct random *r)
{
  double u = (random_next (r) >> 11) * 0x1p-53;

  return (uint64_t)((unsigned __int128)rank (z, u) * SCATTER % z->n);
}
