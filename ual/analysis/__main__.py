from ual.analysis.stage import main

main()
