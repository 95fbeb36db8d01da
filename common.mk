# Flags shared by every directory.
AM_CPPFLAGS = -I$(top_srcdir)/server -I$(top_builddir)
AM_CFLAGS = $(WARN_CFLAGS) $(SAN_CFLAGS) $(PTHREAD_CFLAGS)
AM_LDFLAGS = $(SAN_CFLAGS) $(PTHREAD_LIBS)
