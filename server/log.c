/* blkcache: messages for whoever embeds the server.  See log.h. */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>

#include "log.h"

void
log_printf (log_fn log, enum log_level level, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  if (log == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  log (level, msg);
}
