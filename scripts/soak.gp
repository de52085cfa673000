# Renders scripts/soak's CSV (seconds, ops, rss_mib_1..3, disk_mib_1..3, p99_us,
# p99_minute_us, snapshots, snapshot_pause_ms, snapshot_pause_max_ms,
# leader_changes) as a PNG: throughput, the p99 of each second and the
# loop-thread pause of each snapshot, each node's RSS, each node's data
# directory size over time.
# Usage: gnuplot -e "csv='build/soak/soak.csv'; png='docs/soak.png'; subtitle='...'" scripts/soak.gp
if (!exists("subtitle")) subtitle = ""
set datafile separator ","
set terminal pngcairo size 1000,1150 font "sans,10"
set output png
set multiplot layout 4,1 title "catga-bench soak: 3 processes, command-leader\n".subtitle
set grid
set key top left horizontal samplen 2 width 3
set xlabel "seconds"
set xrange [0:*]
set yrange [0:*]

set ylabel "commands/s"
prev_ops = NaN; prev_t = NaN
rate(t, ops) = (r = (ops - prev_ops) / (t - prev_t), prev_ops = ops, prev_t = t, r)
plot csv using 1:(rate($1, $2)) every ::1 with lines lw 1 lc rgb "#444444" title "throughput"

set ylabel "ms (log)"
set logscale y
set yrange [0.1:*]
prev_snaps = 0
# The leader's last snapshot pause, on the rows where a new snapshot was taken.
pause(n, ms) = (p = (n > prev_snaps && ms > 0) ? ms : NaN, prev_snaps = n, p)
plot csv using 1:(column("p99_us") / 1000) every ::1 with lines lw 1 lc rgb "#444444" title "p99 of each second", \
     csv using 1:(pause(column("snapshots"), column("snapshot_pause_ms"))) every ::1 with points pt 7 ps 1.2 lc rgb "#c00000" \
       title "leader's loop-thread pause per snapshot"
unset logscale y
set yrange [0:*]

set ylabel "RSS MiB"
plot for [i=1:3] csv using 1:(column(2 + i)) every ::1 with lines lw 2 title sprintf("node %d", i)

set ylabel "data dir MiB"
plot for [i=1:3] csv using 1:(column(5 + i)) every ::1 with lines lw 2 title sprintf("node %d", i)
unset multiplot
