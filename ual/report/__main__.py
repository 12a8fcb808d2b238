from ual.report.build import main

main()
