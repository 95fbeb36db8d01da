/* blkcache: messages for whoever embeds the server (the plugin sends them
 * to nbdkit_debug and nbdkit_error).
 *
 * The modules that report something (the engine, the service) are given a
 * log_fn and format their messages with log_printf; they never write to
 * stderr themselves.  Thread-safe if the log_fn is.
 */
#ifndef BLKCACHE_LOG_H
#define BLKCACHE_LOG_H

enum log_level
{
  LOG_LEVEL_DEBUG, /* shown with nbdkit -v */
  LOG_LEVEL_ERROR, /* always shown: an administrator must act */
};

/* Where messages go. */
typedef void (*log_fn) (enum log_level level, const char *msg);

/* Format a message as printf does (at most 511 bytes are kept) and hand it
 * to LOG at LEVEL; nothing when LOG is NULL. */
void log_printf (log_fn log, enum log_level level, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

#endif /* BLKCACHE_LOG_H */
