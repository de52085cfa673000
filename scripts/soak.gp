# Renders scripts/soak's CSV (seconds, ops, rss_mib_1..3, disk_mib_1..3) as a
# PNG: throughput, each node's RSS and each node's data directory size over time.
# Usage: gnuplot -e "csv='build/soak/soak.csv'; png='docs/soak.png'; subtitle='...'" scripts/soak.gp
if (!exists("subtitle")) subtitle = ""
set datafile separator ","
set terminal pngcairo size 1000,900 font "sans,10"
set output png
set multiplot layout 3,1 title "catga-bench soak: 3 processes, command-leader\n".subtitle
set grid
set key top left horizontal samplen 2 width 3
set xlabel "seconds"
set xrange [0:*]
set yrange [0:*]

set ylabel "commands/s"
prev_ops = NaN; prev_t = NaN
rate(t, ops) = (r = (ops - prev_ops) / (t - prev_t), prev_ops = ops, prev_t = t, r)
plot csv using 1:(rate($1, $2)) every ::1 with lines lw 1 lc rgb "#444444" title "throughput"

set ylabel "RSS MiB"
plot for [i=1:3] csv using 1:(column(2 + i)) every ::1 with lines lw 2 title sprintf("node %d", i)

set ylabel "data dir MiB"
plot for [i=1:3] csv using 1:(column(5 + i)) every ::1 with lines lw 2 title sprintf("node %d", i)
unset multiplot
